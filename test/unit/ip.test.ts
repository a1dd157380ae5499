import t from 'tap';
import { ipKey } from '../../src/util/ip.js';

t.test('IPv4 addresses are their own key, also when IPv4-mapped', async (t) => {
  t.equal(ipKey('192.0.2.7'), '192.0.2.7');
  t.equal(ipKey('::ffff:192.0.2.7'), '192.0.2.7');
  t.equal(ipKey('::FFFF:192.0.2.7'), '192.0.2.7');
  t.equal(ipKey('::ffff:c000:207'), '192.0.2.7', 'in hexadecimal groups');
  t.equal(ipKey('0:0:0:0:0:ffff:192.0.2.7'), '192.0.2.7', 'spelled out');
  t.equal(ipKey('0000:0000:0000:0000:0000:FFFF:C000:0207'), '192.0.2.7', 'spelled out in hexadecimal');
  t.equal(ipKey('[::ffff:192.0.2.7]:443'), '192.0.2.7', 'with brackets and a port');
  t.equal(ipKey('::192.0.2.7'), '0:0:0:0::/64', 'IPv4-compatible (deprecated) is not mapped');
});

t.test('IPv6 addresses are grouped by their /64, whatever the text form', async (t) => {
  const key = ipKey('2001:db8::1');
  t.equal(key, '2001:db8:0:0::/64');
  t.equal(ipKey('2001:DB8:0::1'), key, 'upper case and a spelled-out zero group');
  t.equal(ipKey('2001:0db8:0000:0000:ffff:ffff:ffff:ffff'), key, 'another address of the same /64');
  t.equal(ipKey('[2001:db8::2]'), key, 'brackets');
  t.equal(ipKey('2001:db8::2%eth0'), key, 'a zone index');
  t.not(ipKey('2001:db8:0:1::1'), key, 'the next /64 is another key');
  t.equal(ipKey('::2'), '0:0:0:0::/64');
  t.equal(ipKey('::1'), ipKey('::2'), 'both in the all-zero /64');
  t.equal(ipKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64', 'an embedded IPv4 tail');
});

t.test('a port some proxies append is dropped', async (t) => {
  t.equal(ipKey('192.0.2.7:1111'), '192.0.2.7');
  t.equal(ipKey('[2001:db8::1]:443'), '2001:db8:0:0::/64');
});

t.test('what is not an IP address has no key', async (t) => {
  for (const bad of ['garbage', '', '999.1.1.1', '2001:db8::1::2', '1.2.3', '1.2.3.4:99999999x']) t.equal(ipKey(bad), undefined, JSON.stringify(bad));
});

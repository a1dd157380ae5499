import t from 'tap';
import { parseXml } from '../../src/xml/index.js';
import { capsVer } from '../../src/xmpp/features/caps/hash.js';

// XEP-0115 §5.2 (simple) and §5.3 (complex) examples, with their published ver strings.
const SIMPLE = `<query xmlns='http://jabber.org/protocol/disco#info'>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
</query>`;

const COMPLEX = `<query xmlns='http://jabber.org/protocol/disco#info'>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version' type='text-multi'><value>ipv6</value><value>ipv4</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='software_version'><value>0.11</value></field>
  </x>
</query>`;

t.test('the ver of the XEP-0115 §5.2 simple example', async (t) => {
  t.equal(capsVer(parseXml(SIMPLE), 'sha-1'), 'QgayPKawpkPSDYmwT/WM94uAlu0=');
});

t.test('the ver of the §5.3 complex example: identities by lang, an extended form with values sorted', async (t) => {
  t.equal(capsVer(parseXml(COMPLEX), 'sha-1'), 'q07IKJEyjvHSyhy//CH0CxmKi8w=');
});

t.test('a result that §5.4 makes untrustworthy has no ver', async (t) => {
  const twice = SIMPLE.replace('</query>', "<feature var='http://jabber.org/protocol/muc'/></query>");
  t.equal(capsVer(parseXml(twice), 'sha-1'), undefined, 'a repeated feature');
  const twoValues = COMPLEX.replace('<value>urn:xmpp:dataforms:softwareinfo</value>', '<value>urn:xmpp:dataforms:softwareinfo</value><value>urn:other</value>');
  t.equal(capsVer(parseXml(twoValues), 'sha-1'), undefined, 'a FORM_TYPE with differing values (§5.4: ill-formed)');
  t.equal(capsVer(parseXml(SIMPLE), 'md5'), undefined, 'a hash function outside the registry list');
});

t.test('§5.4: a form without FORM_TYPE is ignored and the rest is hashed ("ignore the form but continue processing")', async (t) => {
  const withStray = SIMPLE.replace('</query>', "<x xmlns='jabber:x:data' type='result'><field var='os'><value>Mac</value></field></x></query>");
  t.equal(capsVer(parseXml(withStray), 'sha-1'), capsVer(parseXml(SIMPLE), 'sha-1'), 'the ver of the result without that form');
  t.ok(capsVer(parseXml(SIMPLE), 'sha-1'), 'which is a ver');
});

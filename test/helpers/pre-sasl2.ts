/**
 * SASL2 off unless a test asks (SASL2_ENABLED: 'true'): the tests written
 * before SASL2 drive xmpp.js 0.14 through the legacy SASL and resource
 * binding, which it only uses when SASL2 is not offered, and compare
 * stream features that SASL2 extends.
 */
export const PRE_SASL2: Readonly<Record<string, string>> = { SASL2_ENABLED: 'false' };

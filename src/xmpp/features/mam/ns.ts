import { NS } from '../../../xml/index.js';
/** The namespaces of the archive feature (XEP-0313, XEP-0359, XEP-0059, XEP-0004, XEP-0334). */
export const NS_MAM = 'urn:xmpp:mam:2';
export const NS_MAM_EXTENDED = 'urn:xmpp:mam:2#extended';
export const NS_SID = NS.SID;
export const NS_RSM = 'http://jabber.org/protocol/rsm';
export const NS_DATA = 'jabber:x:data';

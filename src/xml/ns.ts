/** Namespace URIs used across the server (RFC 6120, RFC 7395, XEP-0124/0206 and the XEPs named below). */
export const NS = {
  CLIENT: 'jabber:client',
  STREAM: 'http://etherx.jabber.org/streams',
  FRAMING: 'urn:ietf:params:xml:ns:xmpp-framing', // RFC 7395 §3.3
  STREAMS: 'urn:ietf:params:xml:ns:xmpp-streams', // RFC 6120 §4.9.3
  STANZAS: 'urn:ietf:params:xml:ns:xmpp-stanzas', // RFC 6120 §8.3.3
  SASL: 'urn:ietf:params:xml:ns:xmpp-sasl',
  BIND: 'urn:ietf:params:xml:ns:xmpp-bind',
  SESSION: 'urn:ietf:params:xml:ns:xmpp-session',
  TLS: 'urn:ietf:params:xml:ns:xmpp-tls',
  PING: 'urn:xmpp:ping', // XEP-0199
  DISCO_INFO: 'http://jabber.org/protocol/disco#info', // XEP-0030
  DISCO_ITEMS: 'http://jabber.org/protocol/disco#items',
  HTTPBIND: 'http://jabber.org/protocol/httpbind', // XEP-0124
  XBOSH: 'urn:xmpp:xbosh', // XEP-0206
  SM: 'urn:xmpp:sm:3', // XEP-0198
  SASL2: 'urn:xmpp:sasl:2', // XEP-0388
  BIND2: 'urn:xmpp:bind:0', // XEP-0386
  FAST: 'urn:xmpp:fast:0', // XEP-0484
  ROSTER: 'jabber:iq:roster', // RFC 6121
  VERSION: 'jabber:iq:version', // XEP-0092
  CARBONS: 'urn:xmpp:carbons:2', // XEP-0280
  FORWARD: 'urn:xmpp:forward:0', // XEP-0297
  DELAY: 'urn:xmpp:delay', // XEP-0203
  CSI: 'urn:xmpp:csi:0', // XEP-0352
  BLOCKING: 'urn:xmpp:blocking', // XEP-0191
  BLOCKING_ERRORS: 'urn:xmpp:blocking:errors', // XEP-0191 §3.3
  ROSTERVER: 'urn:xmpp:features:rosterver', // XEP-0237 / RFC 6121 §2.6.1
  PRE_APPROVAL: 'urn:xmpp:features:pre-approval', // RFC 6121 §3.4.1
  VCARD: 'vcard-temp', // XEP-0054
  OFFLINE: 'msgoffline', // XEP-0160
  HINTS: 'urn:xmpp:hints', // XEP-0334
  SID: 'urn:xmpp:sid:0', // XEP-0359
  CHATSTATES: 'http://jabber.org/protocol/chatstates', // XEP-0085
  RECEIPTS: 'urn:xmpp:receipts', // XEP-0184
  CHAT_MARKERS: 'urn:xmpp:chat-markers:0', // XEP-0333
  MUC_USER: 'http://jabber.org/protocol/muc#user', // XEP-0045
  X_CONFERENCE: 'jabber:x:conference', // XEP-0249
  CAPS: 'http://jabber.org/protocol/caps', // XEP-0115
  DATA_FORMS: 'jabber:x:data', // XEP-0004
  PUBSUB: 'http://jabber.org/protocol/pubsub', // XEP-0060 / XEP-0163
  PUBSUB_OWNER: 'http://jabber.org/protocol/pubsub#owner',
  PUBSUB_EVENT: 'http://jabber.org/protocol/pubsub#event',
  PUBSUB_ERRORS: 'http://jabber.org/protocol/pubsub#errors',
  XML: 'http://www.w3.org/XML/1998/namespace', // Namespaces in XML 1.0 §3: always bound to `xml:`
} as const;

/** RFC 6121 §5.2.2: the message types an IM application knows. */
export type MessageType = 'chat' | 'error' | 'groupchat' | 'headline' | 'normal';

const KNOWN: ReadonlySet<string> = new Set<MessageType>(['chat', 'error', 'groupchat', 'headline', 'normal']);

/**
 * RFC 6121 §5.2.2: "If an application receives a message with no 'type' attribute or the
 * application does not understand the value of the 'type' attribute provided, it MUST consider
 * the message to be of type 'normal'." Every rule that depends on the type (delivery, offline
 * storage, carbons, the archive) reads it through here; the stanza itself is relayed as sent.
 */
export function messageType(stanza: { attr(name: string): string | undefined }): MessageType {
  const type = stanza.attr('type');
  return type !== undefined && KNOWN.has(type) ? type as MessageType : 'normal';
}

/**
 * RFC 6121 §8.5.3.2.1: a message of type chat or normal (messageType: absent
 * or unknown is normal) to a full JID whose resource is not
 * connected is handled as if sent to the bare JID (offline storage and carbons then take part). The
 * router asks it when routing, message delivery again when the resource
 * went away while the route was on its way.
 */
export function handledAsBareWithoutResource(type: MessageType): boolean {
  return type === 'chat' || type === 'normal';
}

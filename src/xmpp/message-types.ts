/**
 * RFC 6121 §8.5.3.2.1: a message whose `type` attribute is chat or normal
 * (or absent, which is normal) to a full JID whose resource is not
 * connected is handled as if sent to the bare JID (offline storage and carbons then take part). The
 * router asks it when routing, message delivery again when the resource
 * went away while the route was on its way.
 */
export function handledAsBareWithoutResource(type: string | undefined): boolean {
  return type === undefined || type === 'chat' || type === 'normal';
}

// The demo page: login form, roster with presence, subscription requests,
// a chat pane and the status line. The page's own state (roster, presence,
// chat history) is kept in sessionStorage next to the client's, saved in
// the same turn as each stanza is counted, so a reload shows every message
// exactly once.
import { NS, el, child, bare } from './xml.js';
import { createClient } from './xmpp-lite.js';

const MODEL_KEY = 'demo.model';
/**
 * The stored history is bounded in messages and in characters (the oldest
 * go first), and so are pending subscription requests, so that no sender
 * can fill the page's memory or its sessionStorage quota.
 */
const MAX_MESSAGES = 500;
const MAX_HISTORY_CHARS = 500_000;
const MAX_REQUESTS = 50;
const $ = (id) => document.getElementById(id);
const wsScheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const emptyModel = () => ({ contacts: {}, presence: {}, requests: [], messages: [], selected: null });
let model = JSON.parse(sessionStorage.getItem(MODEL_KEY) ?? 'null') ?? emptyModel();

const client = createClient({
  websocketUrl: `${wsScheme}//${location.host}/xmpp-websocket`,
  boshUrl: `${location.origin}/http-bind`,
  onStanza,
  onStatus: renderStatus,
  onClosed: (condition) => { $('error').textContent = `Disconnected: ${condition}`; },
});

function save() {
  sessionStorage.setItem(MODEL_KEY, JSON.stringify(model));
  render();
}

function onStanza(node) {
  const from = node.getAttribute('from') ?? '';
  if (node.localName === 'iq') return applyRosterItems(child(node, 'query', NS.ROSTER));
  if (node.localName === 'presence') return onPresence(node, from);
  const body = child(node, 'body', NS.CLIENT)?.textContent;
  if (node.localName !== 'message' || !body || node.getAttribute('type') === 'error') return;
  const stamp = child(node, 'delay', NS.DELAY)?.getAttribute('stamp');
  addMessage(bare(from), { dir: 'in', body, stamp: stamp ?? new Date().toISOString(), offline: Boolean(stamp) });
}

function addMessage(peer, entry) {
  const list = model.messages;
  list.push({ peer, ...entry });
  let chars = list.reduce((sum, m) => sum + m.body.length, 0);
  while (list.length > MAX_MESSAGES || chars > MAX_HISTORY_CHARS) chars -= list.shift().body.length;
  model.selected ??= peer;
  save();
}

// RFC 6121 §4: availability per full JID; §3.1.2: a subscription request waits for the user's answer.
function onPresence(node, from) {
  const type = node.getAttribute('type');
  const peer = bare(from);
  if (type === 'subscribe') {
    if (!model.requests.includes(peer) && model.requests.length < MAX_REQUESTS) model.requests.push(peer);
  } else if ((type === null || type === 'unavailable') && model.contacts[peer]) {
    const resources = (model.presence[peer] ??= {});
    if (type === null) resources[from] = child(node, 'show', NS.CLIENT)?.textContent || 'available';
    else delete resources[from];
  }
  save();
}

function applyRosterItems(query) {
  for (const item of query?.children ?? []) {
    const jid = item.getAttribute('jid');
    if (item.getAttribute('subscription') === 'remove') delete model.contacts[jid];
    else model.contacts[jid] = { subscription: item.getAttribute('subscription') ?? 'none', ask: item.getAttribute('ask') };
  }
  save();
}

/** After a new session (not a resumed one): fetch the roster, then send initial presence (RFC 6121 §2.2, §4.2). */
async function startSession(mode) {
  $('error').textContent = '';
  if (mode !== 'new session') return render();
  model.presence = {};
  model.contacts = {};
  applyRosterItems(child(await client.iq('get', el('query', NS.ROSTER)), 'query', NS.ROSTER));
  client.send(el('presence', NS.CLIENT));
}

function text(tag, content, className) {
  const node = document.createElement(tag);
  node.textContent = content;
  if (className) node.className = className;
  return node;
}

function presenceOf(jid) {
  const shows = Object.values(model.presence[jid] ?? {});
  return shows.length === 0 ? 'offline' : shows.includes('available') || shows.includes('chat') ? 'online' : shows[0];
}

function renderRoster() {
  const items = Object.entries(model.contacts).map(([jid, c]) => {
    const li = text('li', '', model.selected === jid ? 'selected' : '');
    li.dataset.jid = jid;
    li.append(text('span', '●', `dot ${presenceOf(jid)}`), text('span', jid, 'name'),
      text('span', `${presenceOf(jid)}${c.ask ? ' · pending' : ''}`, 'presence'));
    li.onclick = () => { model.selected = jid; save(); };
    return li;
  });
  $('roster').replaceChildren(...items);
  $('requests').replaceChildren(...model.requests.map((jid) => {
    const li = text('li', `${jid} wants to see your presence `);
    const button = text('button', 'Accept');
    button.onclick = () => accept(jid);
    li.append(button);
    return li;
  }));
}

function renderChat() {
  const peer = model.selected;
  $('chat-with').textContent = peer ? `Chat with ${peer}` : 'Choose a contact';
  $('messages').replaceChildren(...model.messages.filter((m) => m.peer === peer).map((m) => {
    const li = text('li', '', `msg ${m.dir}`);
    li.append(text('span', m.dir === 'in' ? peer.split('@')[0] : 'me', 'who'), text('span', m.body, 'body'));
    if (m.offline) li.append(text('span', 'offline', 'tag'));
    return li;
  }));
  $('messages').scrollTop = $('messages').scrollHeight;
}

function render() {
  renderRoster();
  renderChat();
}

function renderStatus(st) {
  const loggedIn = Boolean(st.jid) || client.saved;
  $('login').hidden = loggedIn;
  $('app').hidden = !loggedIn;
  $('me').textContent = st.jid ?? '';
  $('transport').textContent = st.transport === 'bosh' ? 'BOSH' : st.transport === 'websocket' ? 'WebSocket' : '—';
  $('mode').textContent = st.online ? st.mode : st.connecting ? 'connecting…' : st.jid ? 'disconnected' : loggedIn ? 'connecting…' : 'not logged in';
  $('counters').textContent = st.sm ? `h in ${st.hIn} / h out ${st.hOut} / unacked ${st.unacked}` : 'no stream management';
  $('switch').textContent = st.transport === 'bosh' ? 'Switch to WebSocket' : 'Switch to BOSH';
  $('reconnect').hidden = st.online || st.connecting || !st.jid;
}

function guard(action) {
  return (event) => {
    event?.preventDefault();
    $('error').textContent = '';
    action().catch((err) => { $('error').textContent = err.message; });
  };
}

function accept(jid) {
  client.send(el('presence', NS.CLIENT, { to: jid, type: 'subscribed' }));
  const contact = model.contacts[jid];
  if (!contact || contact.subscription === 'none' || contact.subscription === 'from') {
    client.send(el('presence', NS.CLIENT, { to: jid, type: 'subscribe' }));
  }
  model.requests = model.requests.filter((r) => r !== jid);
  save();
}

$('login').onsubmit = guard(async () => {
  model = emptyModel();
  const mode = await client.login({ jid: $('jid').value.trim(), password: $('password').value, preference: $('preference').value });
  $('password').value = '';
  await startSession(mode);
});

$('add-contact').onsubmit = guard(async () => {
  const jid = bare($('contact').value.trim());
  await client.iq('set', el('query', NS.ROSTER, {}, [el('item', NS.ROSTER, { jid })]));
  client.send(el('presence', NS.CLIENT, { to: jid, type: 'subscribe' })); // RFC 6121 §3.1.1
  $('contact').value = '';
});

$('compose').onsubmit = guard(async () => {
  const body = $('text').value;
  const to = model.selected;
  if (!to || !body) return;
  const id = crypto.randomUUID();
  client.send(el('message', NS.CLIENT, { to, type: 'chat', id }, [el('body', NS.CLIENT, {}, [body])]));
  $('text').value = '';
  addMessage(to, { dir: 'out', body, stamp: new Date().toISOString() });
});

// After the transport is lost (network, server restart): the same path as a reload, resume first.
$('reconnect').onclick = guard(async () => startSession(await client.restore()));

$('switch').onclick = guard(async () => {
  await startSession(await client.switchTo($('transport').textContent === 'BOSH' ? 'websocket' : 'bosh'));
});

$('logout').onclick = () => {
  client.logout();
  sessionStorage.removeItem(MODEL_KEY);
  model = emptyModel();
  render();
};

render();
client.status();
// A reload: continue the stored session; if even a fresh login with the stored keys fails, back to the login form.
if (client.saved) {
  client.restore().then(startSession).catch((err) => {
    client.logout();
    $('error').textContent = `Could not restore the session: ${err.message}`;
  });
}

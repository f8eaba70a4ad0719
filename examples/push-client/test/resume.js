// Drives weir-push.js against a gateway for tests/integration/push/js_client.rs.
//
//   node --experimental-websocket test/resume.js '{"url": "ws://127.0.0.1:8080/push/connect",
//     "apiKey": "k-alice", "device": "web", "state": "/tmp/state.json", "phases": [3, 2]}'
//
// In each phase it waits for that many messages and for the gateway's ack of the last one.
// Between phases the device goes offline (its socket drops and connections are refused):
// it prints {"event": "offline", ...} and waits for a line on stdin and for a refused
// attempt, then comes back online and the client reconnects by itself. After the last phase it closes and prints
// {"event": "done", ...}: what it got, in order, and the URLs it connected to.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

import { connectPush } from '../weir-push.js';

const config = JSON.parse(process.argv[2]);

// The last offset lives in a JSON file, as an app's would survive a restart.
const storage = {
  getItem: (key) => (existsSync(config.state) ? JSON.parse(readFileSync(config.state, 'utf8'))[key] ?? null : null),
  setItem: (key, value) => {
    const all = existsSync(config.state) ? JSON.parse(readFileSync(config.state, 'utf8')) : {};
    writeFileSync(config.state, JSON.stringify({ ...all, [key]: value }));
  },
};

const events = [];
let acked = 0;
const ackedEarly = []; // acks sent before the handler was done

// A WebSocket that can be taken offline: then it connects where nothing listens.
let online = true;
let current = null;
const urls = [];
let refused = 0;
class Socket extends WebSocket {
  constructor(url) {
    urls.push(String(url));
    super(online ? url : 'ws://127.0.0.1:1/');
    current = this;
    if (!online) {
      refused += 1;
      changed();
    }
  }

  send(data) {
    const frame = JSON.parse(data);
    const handled = events.some((e) => e.type === 'message' && e.offset === frame.offset);
    if (frame.type === 'ack' && !handled) ackedEarly.push(frame.offset);
    super.send(data);
  }
}

let waiting = null;
function changed() {
  if (waiting?.test()) {
    waiting.resolve();
    waiting = null;
  }
}
const until = (test) => new Promise((resolve) => {
  waiting = { test, resolve };
  changed();
});

const client = connectPush({
  url: config.url,
  apiKey: config.apiKey,
  device: config.device,
  storage,
  minDelayMs: 50,
  maxDelayMs: 200,
  WebSocket: Socket,
  // A slow handler, slower for earlier messages: they must still be handled one by one in
  // order, and each acked only after its handler is done.
  onMessage: async (m) => {
    await new Promise((resolve) => setTimeout(resolve, 10 * (5 - (m.offset % 5))));
    events.push({ type: 'message', offset: m.offset, id: m.id, payload: m.payload });
    console.error('message', m.offset, m.id);
    changed();
  },
  onGap: (gap) => {
    events.push({ type: 'gap', ...gap });
    console.error('gap', JSON.stringify(gap));
  },
  onAcked: (offset) => {
    acked = offset;
    changed();
  },
  // Everything is also logged to stderr, which the test shows when it fails.
  onOpen: (hello) => console.error('open', JSON.stringify(hello)),
  onClose: (info) => console.error('close', JSON.stringify(info)),
  onError: (error) => console.error('error', error),
});

const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));

let expected = 0;
for (const [phase, count] of config.phases.entries()) {
  expected += count;
  const messages = () => events.filter((e) => e.type === 'message');
  await until(() => messages().length >= expected && acked >= messages().at(-1).offset);
  if (phase < config.phases.length - 1) {
    online = false;
    current.close();
    console.log(JSON.stringify({ event: 'offline', events }));
    await nextLine();
    // Back online once the client has been refused at least once: it must retry.
    await until(() => refused > 0);
    online = true;
  }
}
await client.close();
lines.close();
console.log(JSON.stringify({
  event: 'done',
  events,
  acked,
  ackedEarly,
  lastOffset: client.lastOffset(),
  stored: storage.getItem(`weir-push:${config.device}`),
  urls,
  refused,
}));

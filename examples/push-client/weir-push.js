// A small client for Weir push routes (the protocol: docs/push.md), for browsers and Node
// (Node 22+, or Node 20.10+ with --experimental-websocket). No dependencies.
//
// It keeps one WebSocket to the connect endpoint, hands each message to your handler in
// order, then remembers its offset and acks it. When the connection drops it reconnects
// with back-off and resumes after the last offset it remembered.

/** Close code the gateway uses when a newer connection of the same device took over. */
const REPLACED = 4000;

/**
 * A storage with the Web Storage shape; `localStorage` fits, and so does React Native's
 * `AsyncStorage` (its methods may return promises).
 * @typedef {object} OffsetStorage
 * @property {(key: string) => (string | null | Promise<string | null>)} getItem
 * @property {(key: string, value: string) => (void | Promise<void>)} setItem
 */

/**
 * A message from the gateway.
 * @typedef {object} PushMessage
 * @property {number} offset Its place in the device's stream (1, 2, 3, ...).
 * @property {string} id The publisher's id (use it to make your handler idempotent).
 * @property {*} payload What the business server published.
 * @property {string} priority
 * @property {number} expires_ms
 * @property {string} [collapse_key]
 */

/**
 * Connects a device to a push route and keeps it connected until `close()`.
 *
 * Each message goes to `onMessage`; after it returns (or its promise resolves) the offset
 * is stored and acked, so an acked message never comes again. If `onMessage` throws, the
 * message is not acked: the connection is dropped and the gateway sends it again after
 * the reconnect. Messages can still come twice (say the app dies between handling and
 * storing), so handle them idempotently, by `id`.
 *
 * @param {object} options
 * @param {string} options.url The connect endpoint, e.g. `wss://gw.example/push/connect`.
 * @param {string} options.device The device id, registered on the devices endpoint.
 * @param {string} [options.apiKey] The user's API key, sent in the query (browsers cannot
 *   set headers on a WebSocket).
 * @param {string} [options.apiKeyParam="apikey"] The query parameter the route's `auth`
 *   filter reads (its `api_key.query`).
 * @param {(message: PushMessage) => (void | Promise<void>)} options.onMessage
 * @param {(gap: {from: number, to: number}) => (void | Promise<void>)} [options.onGap]
 *   Messages `from`..`to` are gone unread (expired, or past the history cap): resync what
 *   they held, e.g. by fetching the current state from your server.
 * @param {(hello: {device: string, acked: number}) => void} [options.onOpen]
 * @param {(acked: number) => void} [options.onAcked] The gateway has stored the ack.
 * @param {(info: {code: number, reason: string, retryInMs: (number | null)}) => void}
 *   [options.onClose] The connection closed; `retryInMs` is null when it will not
 *   reconnect (after `close()`, or when a newer connection of the device took over).
 * @param {(error: Error) => void} [options.onError] Error frames, handler and storage
 *   failures.
 * @param {OffsetStorage} [options.storage] Where the last offset is kept; `localStorage`
 *   when there is one, else memory.
 * @param {number} [options.minDelayMs=1000] The first reconnect delay.
 * @param {number} [options.maxDelayMs=30000] The longest reconnect delay.
 * @param {typeof WebSocket} [options.WebSocket] A WebSocket class; the global one by
 *   default.
 * @returns {{close: () => Promise<void>, lastOffset: () => number}}
 */
export function connectPush(options) {
  const o = {
    apiKeyParam: 'apikey',
    onGap: () => {},
    onOpen: () => {},
    onAcked: () => {},
    onClose: () => {},
    onError: (error) => console.error('weir-push:', error),
    storage: defaultStorage(),
    minDelayMs: 1000,
    maxDelayMs: 30000,
    WebSocket: globalThis.WebSocket,
    ...options,
  };
  if (!o.WebSocket) {
    throw new Error('no WebSocket class (Node 20: run with --experimental-websocket)');
  }
  const base = new URL(o.url); // throws at once on a bad URL
  const key = `weir-push:${o.device}`;
  let lastOffset = null; // read from storage before the first connection
  let socket = null;
  let retry = null;
  let failures = 0;
  let stopped = false;

  async function remember(offset) {
    if (offset > lastOffset) {
      lastOffset = offset;
      await o.storage.setItem(key, String(offset));
    }
  }

  async function handle(ws, frame) {
    // After a drop (or a failed handler) the rest is not handled: it comes again.
    if (ws.readyState !== ws.OPEN) return;
    switch (frame.type) {
      case 'hello':
        failures = 0;
        await remember(frame.acked); // the gateway may know more than our storage
        o.onOpen(frame);
        break;
      case 'message':
        if (frame.offset > lastOffset) {
          await o.onMessage(frame);
          await remember(frame.offset);
        }
        // Acks are cumulative: everything up to this offset arrived. (The socket may
        // have closed while the handler ran: the next connection's last_offset acks it.)
        if (ws.readyState === ws.OPEN) {
          ws.send(JSON.stringify({ type: 'ack', offset: frame.offset }));
        }
        break;
      case 'gap':
        await o.onGap({ from: frame.from, to: frame.to });
        await remember(frame.to);
        break;
      case 'acked':
        o.onAcked(frame.acked);
        break;
      case 'error':
        o.onError(new Error(`${frame.code}: ${frame.message}`));
        break;
      default:
        break; // newer frames this client does not know
    }
  }

  async function open() {
    retry = null;
    if (lastOffset === null) {
      lastOffset = Number(await o.storage.getItem(key)) || 0;
    }
    if (stopped) return;
    const url = new URL(base);
    url.searchParams.set('device', o.device);
    if (o.apiKey) url.searchParams.set(o.apiKeyParam, o.apiKey);
    if (lastOffset > 0) url.searchParams.set('last_offset', String(lastOffset));
    const ws = new o.WebSocket(url.toString());
    socket = ws;
    // Frames are handled one at a time, in the order they came.
    let queue = Promise.resolve();
    ws.onmessage = (event) => {
      queue = queue
        .then(() => handle(ws, JSON.parse(event.data)))
        .catch((error) => {
          o.onError(error);
          ws.close(); // what was not acked comes again after the reconnect
        });
    };
    const ended = (code, reason) => {
      if (socket !== ws) return;
      socket = null;
      const again = !stopped && code !== REPLACED;
      o.onClose({ code, reason, retryInMs: again ? later() : null });
    };
    ws.onclose = (event) => ended(event.code, event.reason);
    // An error always ends the connection; Node 20's WebSocket does not always send a
    // close event after it.
    ws.onerror = () => ended(1006, 'connection failed');
  }

  /** Schedules the next attempt; returns its delay (exponential, with jitter). */
  function later() {
    failures += 1;
    const cap = Math.min(o.maxDelayMs, o.minDelayMs * 2 ** (failures - 1));
    const delay = Math.round(cap / 2 + (Math.random() * cap) / 2);
    retry = setTimeout(start, delay);
    return delay;
  }

  function start() {
    open().catch((error) => {
      o.onError(error);
      if (!stopped) later();
    });
  }

  start();
  return {
    /** Closes the connection and stops reconnecting; resolves once it is closed. */
    close() {
      stopped = true;
      clearTimeout(retry);
      const ws = socket;
      if (!ws) return Promise.resolve();
      return new Promise((resolve) => {
        ws.addEventListener('close', () => resolve());
        ws.addEventListener('error', () => resolve());
        ws.close(1000);
      });
    },
    /** The last offset handled (0 before any). */
    lastOffset: () => lastOffset ?? 0,
  };
}

/** `localStorage` when there is one (browsers), else a map in memory. */
function defaultStorage() {
  try {
    if (globalThis.localStorage) return globalThis.localStorage;
  } catch {
    // Some browsers throw when storage is disabled.
  }
  const map = new Map();
  return {
    getItem: (key) => map.get(key) ?? null,
    setItem: (key, value) => void map.set(key, value),
  };
}

// Live events in `seq` order, exactly once (CONTRACT §7).
//
// Every event carries the operator's `seq`. Events are applied strictly in order: one that
// arrives early waits for the ones before it; one already applied is dropped. After every
// (re)connect the socket has already joined the operator's room, and then the desk replays
// GET /api/events?after=<last seq>, so nothing sent while it was away is missed. A gap that does
// not close quickly also triggers a replay.

// An early event waits this long for the ones before it before the desk asks for a replay.
const GAP_WAIT_MS = 400;

export class Sync {
  constructor({ api, seq, token, onEvent, onState, onReset }) {
    this.api = api;
    this.seq = seq;
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onReset = onReset;
    this.waiting = new Map();
    this.gapTimer = null;
    this.replaying = null;
    this.replayAgain = false;
    this.socket = null;
    this.connected = false;
    this.stopped = false;
  }

  start() {
    const options = {
      path: "/socket.io",
      transports: ["websocket"],
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      randomizationFactor: 0.5,
    };
    if (this.token) options.auth = { token: this.token };
    const socket = window.io(options);
    this.socket = socket;
    socket.on("connect", () => {
      this.connected = true;
      this.onState("connected");
      this.replay();
    });
    socket.on("disconnect", (reason) => {
      this.connected = false;
      if (this.stopped) return;
      this.onState("disconnected");
      // The server dropped us on purpose (session revoked): the client does not retry by itself.
      if (reason === "io server disconnect") this.onState("ended");
    });
    socket.on("connect_error", (err) => {
      this.connected = false;
      if (this.stopped) return;
      this.onState(socket.active ? "disconnected" : "ended", err && err.message);
    });
    socket.onAny((name, data) => {
      if (data && Number.isInteger(data.seq)) this.receive(data.seq, name, data);
    });
  }

  stop() {
    this.stopped = true;
    if (this.socket) this.socket.disconnect();
  }

  receive(seq, name, data) {
    if (seq <= this.seq || this.waiting.has(seq)) return;
    this.waiting.set(seq, { name, data });
    this.drain();
    if (this.waiting.size && !this.gapTimer) {
      this.gapTimer = setTimeout(() => {
        this.gapTimer = null;
        if (this.waiting.size) this.replay();
      }, GAP_WAIT_MS);
    }
  }

  drain() {
    while (this.waiting.has(this.seq + 1)) {
      const next = this.seq + 1;
      const { name, data } = this.waiting.get(next);
      this.waiting.delete(next);
      this.seq = next;
      try {
        this.onEvent(name, data);
      } catch (err) {
        console.error("applying", name, "failed", err);
      }
    }
    for (const seq of this.waiting.keys()) if (seq <= this.seq) this.waiting.delete(seq);
  }

  /** Fetch and apply every event after the last one applied; concurrent calls share one run. */
  replay() {
    if (this.replaying) {
      this.replayAgain = true;
      return this.replaying;
    }
    this.replaying = (async () => {
      do {
        this.replayAgain = false;
        for (;;) {
          const before = this.seq;
          const page = await this.api.get(`/api/events?after=${this.seq}`);
          for (const event of page.events) this.receive(event.seq, event.event, { ...event.data, seq: event.seq });
          if (page.events.length && this.seq === before) {
            // The log lacks the next seq (it never should): accept the hole rather than stall.
            console.warn("event log skips from", before, "to", page.events[0].seq);
            this.seq = page.events[0].seq - 1;
            this.drain();
          }
          if (!page.events.length || this.seq >= page.seq) break;
        }
      } while (this.replayAgain);
    })()
      .catch((err) => {
        if (err.status === 410) this.onReset();
        else if (err.status !== 401) console.warn("replay failed; it runs again on reconnect", err);
      })
      .finally(() => {
        this.replaying = null;
      });
    return this.replaying;
  }
}

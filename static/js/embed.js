// The desk inside another page: postMessage both ways with the host, checked against the
// allow-list (CONTRACT §2). Each message is an object {type, data}.

export class HostBridge {
  constructor({ origins, handlers }) {
    this.origins = origins || [];
    this.handlers = handlers;
    this.framed = window.parent !== window;
    this.target = this.framed ? this.hostOrigin() : null;
    if (this.framed) window.addEventListener("message", (event) => this.receive(event));
  }

  /** The host's origin, if it is on the allow-list: messages go to that origin only. */
  hostOrigin() {
    const candidates = [];
    if (window.location.ancestorOrigins && window.location.ancestorOrigins.length) {
      candidates.push(window.location.ancestorOrigins[0]);
    }
    try {
      if (document.referrer) candidates.push(new URL(document.referrer).origin);
    } catch (err) {
      // no usable referrer
    }
    for (const origin of candidates) if (this.origins.includes(origin)) return origin;
    return this.origins.length === 1 && !candidates.length ? this.origins[0] : null;
  }

  post(type, data = {}) {
    if (!this.target) return;
    window.parent.postMessage({ type, data }, this.target);
  }

  receive(event) {
    if (event.source !== window.parent || !this.origins.includes(event.origin)) return;
    const message = event.data;
    if (!message || typeof message !== "object" || typeof message.type !== "string") return;
    if (!this.target) this.target = event.origin;
    const handler = this.handlers[message.type];
    if (handler) handler(message.data && typeof message.data === "object" ? message.data : {});
  }
}

// What the settings page knows: the lists of the admin API, kept in one place so that a change in
// one section (a queue renamed) shows in the others (an operator's queues).

export class State extends EventTarget {
  constructor(me) {
    super();
    this.me = me;
    this.providers = [];
    this.channels = [];
    this.queues = [];
    this.operators = [];
    this.actions = [];
  }

  /** Replace a whole list and tell the sections. */
  set(kind, list) {
    this[kind] = list;
    this.changed(kind);
  }

  /** Add or replace one object of a list by id. */
  put(kind, object) {
    const list = this[kind];
    const index = list.findIndex((item) => item.id === object.id);
    if (index >= 0) list[index] = object;
    else list.push(object);
    if (kind === "operators" && object.id === this.me.id) this.me = object;
    this.changed(kind);
    return object;
  }

  /** Remove one object of a list by id. */
  remove(kind, id) {
    this[kind] = this[kind].filter((item) => item.id !== id);
    this.changed(kind);
  }

  changed(kind) {
    this.dispatchEvent(new CustomEvent("change", { detail: kind }));
  }

  provider(code) {
    return this.providers.find((p) => p.code === code) || null;
  }

  queueName(id) {
    const queue = this.queues.find((q) => q.id === id);
    return queue ? queue.name : "";
  }

  operatorName(id) {
    const op = this.operators.find((o) => o.id === id);
    return op ? op.name : "";
  }

  /** Return the operators who are members of queue ``id``. */
  members(id) {
    return this.operators.filter((op) => op.queue_ids.includes(id));
  }
}

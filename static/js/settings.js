// The settings page: channels, operators, queues, embedding. Every change goes through the admin
// JSON API (CONTRACT §5) with the session cookie and the page's CSRF token, like the desk.

import { Api } from "./api.js";
import { byId, el, icon } from "./dom.js";
import { hueOf, initials } from "./format.js";
import { Channels } from "./settings/channels.js";
import { Embedding } from "./settings/embedding.js";
import { Operators } from "./settings/operators.js";
import { Queues } from "./settings/queues.js";
import { State } from "./settings/state.js";

const SECTIONS = ["channels", "operators", "queues", "embedding"];

const config = JSON.parse(byId("settings-config").textContent);
const root = byId("settings");
const api = new Api(config);
const state = new State(config.me);

function showNotice(text, action) {
  const notice = byId("notice");
  notice.replaceChildren(icon("alert"), el("span", { text }));
  if (action) notice.append(action);
  notice.hidden = false;
}

api.onUnauthorized = () => {
  showNotice("Your session has ended.", el("a", { href: "/login?next=/settings", class: "link-button", text: "Sign in again" }));
};

function renderMe() {
  const avatar = document.querySelector(".me-avatar");
  avatar.querySelector(".avatar-initials").textContent = initials(state.me.name);
  avatar.className = `avatar avatar-sm me-avatar hue-${hueOf(`op:${state.me.id}`)}`;
  document.querySelector(".me-name").textContent = state.me.name;
}

/** Show the section the URL's hash names (#channels by default). */
function route() {
  const name = window.location.hash.slice(1);
  const current = SECTIONS.includes(name) ? name : "channels";
  for (const section of document.querySelectorAll(".settings-section")) section.hidden = section.dataset.section !== current;
  for (const link of document.querySelectorAll(".settings-nav-link")) {
    const active = link.dataset.section === current;
    link.classList.toggle("is-active", active);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

const channels = new Channels({ api, state });
const operators = new Operators({ api, state });
const queues = new Queues({ api, state });
const embedding = new Embedding({ api });

async function start() {
  renderMe();
  route();
  window.addEventListener("hashchange", route);
  try {
    const [providers, channelList, queueList, operatorList, actions] = await Promise.all([
      api.get("/api/providers"), api.get("/api/channels"), api.get("/api/queues"),
      api.get("/api/operators"), api.get("/api/actions"),
    ]);
    state.providers = providers;
    state.channels = channelList;
    state.queues = queueList;
    state.operators = operatorList;
    state.actions = actions;
    const me = operatorList.find((op) => op.id === state.me.id);
    if (me) state.me = me;
    operators.render();
    queues.render();
    await Promise.all([channels.load(), embedding.load()]);
  } catch (err) {
    if (err.status !== 401) showNotice(`The settings could not be loaded (${err.message}). Reload the page to try again.`);
    return;
  }
  root.dataset.loading = "false";
}

state.addEventListener("change", (event) => { if (event.detail === "operators") renderMe(); });

start();

// The router: one page at a time (hash routes, so reloads and links keep the place), refreshed live.
import { clearError, params, showError } from './ui.js';
import overview from './pages/overview.js';
import topics from './pages/topics.js';
import topic from './pages/topic.js';
import messages from './pages/messages.js';
import produce from './pages/produce.js';
import groups from './pages/groups.js';
import group from './pages/group.js';

const REFRESH_MS = 2000;
const routes = [
  [/^\/$/, overview, 'overview'],
  [/^\/topics$/, topics, 'topics'],
  [/^\/topics\/(.+)$/, topic, 'topics'],
  [/^\/messages$/, messages, 'messages'],
  [/^\/produce$/, produce, 'produce'],
  [/^\/groups$/, groups, 'groups'],
  [/^\/groups\/(.+)$/, group, 'groups'],
];

let current = null;
let timer = null;

async function refresh() {
  if (!current || !current.refresh) return;
  const live = document.getElementById('live');
  try {
    await current.refresh();
    live.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.refreshed = String(Date.now());
  } catch (error) {
    live.textContent = 'Update failed';
    showError(error, 'Could not update');
  }
}

async function navigate() {
  clearTimeout(timer);
  if (current && current.unmount) current.unmount();
  clearError();
  const { path, query } = params();
  const main = document.getElementById('main');
  main.replaceChildren();
  let found = routes.find(([pattern]) => pattern.test(path));
  if (!found) found = routes[0];
  const [pattern, page, nav] = found;
  const match = path.match(pattern) || [];
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === nav) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  current = page.mount(main, { arg: match[1] ? decodeURIComponent(match[1]) : null, query });
  document.title = `${current.title || 'gafka'} · gafka console`;
  await refresh();
  loop();
}

function loop() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (!document.hidden) await refresh();
    loop();
  }, REFRESH_MS);
}

window.addEventListener('hashchange', navigate);
navigate();

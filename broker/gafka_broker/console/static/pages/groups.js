// Consumer groups of the whole cluster (each broker lists those it coordinates), with their total lag.
import { api } from '../api.js';
import { h, number, pill, replace, table } from '../ui.js';

const STATE_KIND = { Stable: 'up', Empty: 'info', Assigning: 'warn', Reconciling: 'warn' };

export default {
  mount(root) {
    const list = h('div', { id: 'groups-list' });
    const note = h('p', { class: 'note', role: 'status' });
    root.append(h('h1', {}, 'Consumer groups'), note, list);

    async function refresh() {
      const [cluster, { groups }] = await Promise.all([api.cluster(), api.groups()]);
      const down = cluster.brokers.filter((b) => b.fenced).map((b) => b.id);
      const details = await Promise.allSettled(groups.map((g) => api.group(g.group)));
      const rows = groups.map((g, i) => {
        const d = details[i].status === 'fulfilled' ? details[i].value : null;
        const lag = d ? d.partitions.reduce((sum, p) => sum + (p.lag || 0), 0) : null;
        const topics = d ? [...new Set(d.partitions.map((p) => p.topic))].join(', ') : '';
        return [
          h('a', { href: `#/groups/${encodeURIComponent(g.group)}` }, g.group),
          pill(g.state, STATE_KIND[g.state] || 'info'),
          { value: number(g.member_count) },
          topics || '–',
          { value: number(lag) },
        ];
      });
      note.textContent = down.length ? `Broker(s) ${down.join(', ')} fenced: groups they coordinated move to other brokers.` : '';
      note.className = down.length ? 'note error' : 'note';
      replace(list, table(['Group', 'State', { label: 'Members', num: true }, 'Topics', { label: 'Lag', num: true }], rows, { empty: 'No consumer groups yet.' }));
    }
    return { title: 'Groups', refresh };
  },
};

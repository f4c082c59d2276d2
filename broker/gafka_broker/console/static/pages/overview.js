// Cluster overview: brokers (up, fenced or down), racks, leaderships, the controller, partition health,
// bytes in/out per second (from two readings of each broker's counters).
import { api } from '../api.js';
import { bytes, card, h, number, pill, replace, table } from '../ui.js';

export default {
  mount(root) {
    const cards = h('div', { class: 'cards', id: 'overview-cards' });
    const brokers = h('div', { id: 'overview-brokers' });
    root.append(h('h1', {}, 'Cluster'), cards, h('h2', {}, 'Brokers'), brokers);
    const previous = new Map();

    async function refresh() {
      const cluster = await api.cluster();
      const stats = await Promise.allSettled(cluster.brokers.map((b) => api.brokerStats(b.id)));
      let inRate = 0;
      let outRate = 0;
      let up = 0;
      const rows = cluster.brokers.map((broker, index) => {
        const answer = stats[index];
        const s = answer.status === 'fulfilled' ? answer.value : null;
        let rateIn = null;
        let rateOut = null;
        if (s) {
          const before = previous.get(broker.id);
          if (before && s.time_ms > before.time_ms) {
            const seconds = (s.time_ms - before.time_ms) / 1000;
            rateIn = Math.max(0, (s.bytes_in_total - before.bytes_in_total) / seconds);
            rateOut = Math.max(0, (s.bytes_out_total - before.bytes_out_total) / seconds);
            inRate += rateIn;
            outRate += rateOut;
          }
          previous.set(broker.id, s);
        } else {
          previous.delete(broker.id);
        }
        const state = !s ? pill('down', 'down') : broker.fenced ? pill('fenced', 'fenced') : pill('up', 'up');
        if (s && !broker.fenced) up += 1;
        return [
          { value: String(broker.id) },
          state,
          broker.rack || '–',
          cluster.controller === broker.id ? pill('controller', 'info') : '',
          { value: number(broker.leaders) },
          { value: number(broker.replicas) },
          { value: rateIn === null ? '–' : `${bytes(Math.round(rateIn))}/s` },
          { value: rateOut === null ? '–' : `${bytes(Math.round(rateOut))}/s` },
          { value: s ? bytes(s.log_size_bytes) : '–' },
          { value: s ? bytes(s.disk_free_bytes) : '–' },
          h('span', { class: 'mono' }, broker.url),
        ];
      });
      const p = cluster.partitions || { total: 0, under_replicated: 0, under_min_isr: 0, offline: 0 };
      replace(
        cards,
        card('Brokers up', `${up} / ${cluster.brokers.length}`, up < cluster.brokers.length ? 'bad' : 'ok'),
        card(
          'Controller',
          cluster.controller >= 0 ? `broker ${cluster.controller}` : 'own process',
        ),
        card('Partitions', number(p.total)),
        card('Under-replicated', number(p.under_replicated), p.under_replicated ? 'bad' : 'ok'),
        card('Under min ISR', number(p.under_min_isr), p.under_min_isr ? 'bad' : 'ok'),
        card('Offline', number(p.offline), p.offline ? 'bad' : 'ok'),
        card('Bytes in', `${bytes(Math.round(inRate))}/s`),
        card('Bytes out', `${bytes(Math.round(outRate))}/s`),
      );
      replace(
        brokers,
        table(
          [
            'Id', 'State', 'Rack', 'Role', { label: 'Leaders', num: true }, { label: 'Replicas', num: true },
            { label: 'In', num: true }, { label: 'Out', num: true }, { label: 'Logs', num: true },
            { label: 'Disk free', num: true }, 'URL',
          ],
          rows,
        ),
        h('p', { class: 'note' }, `Cluster ${cluster.cluster_id}; controller at `, h('span', { class: 'mono' }, cluster.controller_url || '–')),
      );
    }
    return { title: 'Overview', refresh };
  },
};

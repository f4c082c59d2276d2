// Topics: every topic with partitions, replication, health and size; create one.
import { api } from '../api.js';
import { bytes, field, h, number, pill, replace, showError, table } from '../ui.js';

export default {
  mount(root) {
    const list = h('div', { id: 'topics-list' });
    const internal = h('input', { type: 'checkbox', id: 'show-internal' });
    const name = h('input', { name: 'name', required: true, pattern: '[a-zA-Z0-9._\\-]{1,249}', placeholder: 'orders', 'aria-label': 'Topic name' });
    const partitions = h('input', { name: 'partitions', type: 'number', min: 1, value: 3, 'aria-label': 'Partitions' });
    const replication = h('input', { name: 'replication', type: 'number', min: 1, placeholder: 'default', 'aria-label': 'Replication factor' });
    const status = h('span', { role: 'status' });
    const form = h(
      'form',
      { class: 'inline', id: 'create-topic', 'aria-label': 'Create a topic' },
      field('Name', name),
      field('Partitions', partitions),
      field('Replication factor', replication),
      h('button', { class: 'primary', type: 'submit' }, 'Create topic'),
      status,
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const body = { name: name.value.trim(), partitions: Number(partitions.value) };
      if (replication.value) body.replication_factor = Number(replication.value);
      try {
        await api.createTopic(body);
        status.textContent = `Created ${body.name}`;
        status.className = 'ok';
        name.value = '';
        await refresh();
      } catch (error) {
        status.textContent = '';
        showError(error, `Could not create ${body.name}`);
      }
    });
    internal.addEventListener('change', () => refresh());
    root.append(
      h('h1', {}, 'Topics'),
      form,
      h('div', { class: 'toolbar' }, h('label', { for: 'show-internal', style: 'flex-direction: row; gap: 6px' }, internal, 'Show internal topics')),
      list,
    );

    async function refresh() {
      const { topics } = await api.topics(internal.checked);
      const described = await Promise.allSettled(topics.map((t) => api.topic(t.name)));
      const rows = topics.map((t, i) => {
        const d = described[i].status === 'fulfilled' ? described[i].value : null;
        const parts = d ? d.partitions : [];
        const offline = parts.filter((p) => p.leader < 0).length;
        const under = parts.filter((p) => p.isr.length < p.replicas.length).length;
        const size = parts.reduce((sum, p) => sum + (p.size_bytes || 0), 0);
        const messages = parts.reduce((sum, p) => sum + ((p.high_watermark ?? 0) - (p.log_start_offset ?? 0)), 0);
        const health = !d ? pill('unknown', 'warn') : offline ? pill(`${offline} offline`, 'down') : under ? pill(`${under} under-replicated`, 'fenced') : pill('healthy', 'up');
        return [
          h('a', { href: `#/topics/${encodeURIComponent(t.name)}` }, t.name),
          { value: number(t.partitions) },
          { value: number(t.replication_factor) },
          health,
          { value: d ? number(messages) : '–' },
          { value: d ? bytes(size) : '–' },
          h('a', { href: `#/messages?topic=${encodeURIComponent(t.name)}`, 'aria-label': `Browse messages of ${t.name}` }, 'Browse'),
        ];
      });
      replace(
        list,
        table(
          ['Topic', { label: 'Partitions', num: true }, { label: 'Replication', num: true }, 'Health', { label: 'Messages', num: true }, { label: 'Size', num: true }, ''],
          rows,
          { empty: 'No topics yet: create one above.' },
        ),
      );
    }
    return { title: 'Topics', refresh };
  },
};

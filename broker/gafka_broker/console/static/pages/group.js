// One consumer group: state, members and their assignments, per-partition committed offset, log end, lag
// and a lag sparkline (kept while the page is open); reset offsets while it is empty, with a preview.
import { api } from '../api.js';
import { confirmAction, field, h, number, pill, replace, showError, sparkline, table } from '../ui.js';

const HISTORY = 40;

export default {
  mount(root, { arg: name }) {
    const head = h('div', { class: 'cards', id: 'group-cards' });
    const members = h('div', { id: 'group-members' });
    const partitions = h('div', { id: 'group-partitions' });
    const history = new Map();
    const totals = [];

    const to = h('select', { id: 'reset-to', 'aria-label': 'Reset to' },
      h('option', { value: 'earliest' }, 'earliest'), h('option', { value: 'latest' }, 'latest'),
      h('option', { value: 'timestamp' }, 'timestamp'), h('option', { value: 'offset' }, 'offset'));
    const at = h('input', { id: 'reset-value', 'aria-label': 'Offset, or time (UTC)', placeholder: 'offset or 2026-12-03T10:00:00' });
    const topic = h('select', { id: 'reset-topic', 'aria-label': 'Topics' }, h('option', { value: '' }, 'every committed partition'));
    const preview = h('div', { id: 'reset-preview' });
    const why = h('p', { class: 'note', id: 'reset-why' });
    const previewButton = h('button', { type: 'submit', id: 'reset-preview-button' }, 'Preview');
    const form = h('form', { class: 'inline', id: 'reset-form' }, field('Reset to', to), field('Value', at), field('Topics', topic), previewButton);
    let planned = null;

    const body = () => {
      const request = {};
      if (to.value === 'earliest' || to.value === 'latest') request.to = to.value;
      else if (to.value === 'offset') request.to = { offset: Number(at.value) };
      else {
        const ms = /^\d+$/.test(at.value) ? Number(at.value) : Date.parse(at.value.endsWith('Z') ? at.value : `${at.value}Z`);
        request.to = { timestamp: ms };
      }
      if (topic.value) request.topics = [topic.value];
      return request;
    };

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        const request = body();
        const answer = await api.resetOffsets(name, { ...request, dry_run: true });
        planned = request;
        const rows = answer.offsets.map((o) => [o.topic, { value: String(o.partition) }, { value: number(o.current_offset) }, { value: number(o.offset) },
          o.current_offset === null ? 'new' : o.offset === o.current_offset ? 'same' : o.offset > o.current_offset ? `+${o.offset - o.current_offset}` : String(o.offset - o.current_offset)]);
        const apply = h('button', { class: 'danger', type: 'button', id: 'reset-apply' }, `Apply reset of ${rows.length} partition(s)`);
        apply.addEventListener('click', async () => {
          if (!(await confirmAction(`Reset offsets of ${name}?`, h('p', {}, `${rows.length} committed offset(s) will move as previewed.`), 'Reset'))) return;
          try {
            await api.resetOffsets(name, planned);
            replace(preview, h('p', { class: 'ok', role: 'status', id: 'reset-done' }, `Offsets of ${rows.length} partition(s) reset.`));
            await refresh();
          } catch (error) {
            showError(error, 'Could not reset');
          }
        });
        replace(preview, table(['Topic', { label: 'Partition', num: true }, { label: 'Committed now', num: true }, { label: 'After reset', num: true }, 'Change'], rows), apply);
      } catch (error) {
        replace(preview);
        showError(error, 'Could not preview the reset');
      }
    });

    root.append(
      h('p', {}, h('a', { href: '#/groups' }, '← Groups')),
      h('h1', {}, 'Group ', h('span', { class: 'mono' }, name)),
      head,
      h('h2', {}, 'Members'), members,
      h('h2', {}, 'Partitions'), partitions,
      h('h2', {}, 'Reset offsets'), why, form, preview,
    );

    async function refresh() {
      const group = await api.group(name);
      let total = 0;
      for (const p of group.partitions) {
        const key = `${p.topic}/${p.partition}`;
        const values = history.get(key) || [];
        values.push(p.lag ?? 0);
        if (values.length > HISTORY) values.shift();
        history.set(key, values);
        total += p.lag || 0;
      }
      totals.push(total);
      if (totals.length > HISTORY) totals.shift();
      replace(head,
        h('div', { class: 'card' }, h('div', { class: 'label' }, 'State'), h('div', { class: 'value', id: 'group-state' }, group.state)),
        h('div', { class: 'card' }, h('div', { class: 'label' }, 'Members'), h('div', { class: 'value' }, number(group.member_count))),
        h('div', { class: 'card' }, h('div', { class: 'label' }, 'Total lag'), h('div', { class: 'value', id: 'group-lag' }, number(total)), sparkline(totals, { label: 'total lag' })),
        h('div', { class: 'card' }, h('div', { class: 'label' }, 'Epoch / assignor'), h('div', { class: 'value' }, `${group.group_epoch} · ${group.assignor}`)),
        h('div', { class: 'card' }, h('div', { class: 'label' }, 'Coordinator'), h('div', { class: 'value' }, `broker ${group.coordinator}`)));
      const assignment = (list) => list.map((a) => `${a.topic}: ${a.partitions.join(', ')}`).join('; ') || '–';
      replace(members, table(['Member', 'Instance', { label: 'Epoch', num: true }, 'Subscriptions', 'Assignment', 'Revoking'],
        group.members.map((m) => [h('span', { class: 'mono' }, m.member_id), m.instance_id || '–', { value: String(m.member_epoch) },
          m.subscriptions.join(', '), assignment(m.assignment), assignment(m.pending_revocation)]),
        { empty: 'No members: the group is empty.' }));
      replace(partitions, table(['Topic', { label: 'Partition', num: true }, 'Member', { label: 'Committed', num: true }, { label: 'Log end', num: true }, { label: 'Lag', num: true }, 'Lag over time'],
        group.partitions.map((p) => [p.topic, { value: String(p.partition) }, p.member_id ? h('span', { class: 'mono' }, p.member_id) : '–',
          { value: number(p.committed_offset) }, { value: number(p.log_end_offset) }, { value: number(p.lag) },
          sparkline(history.get(`${p.topic}/${p.partition}`), { label: `lag of ${p.topic} ${p.partition}` })])));
      const empty = group.members.length === 0;
      previewButton.disabled = !empty;
      why.textContent = empty ? 'The group has no members: its offsets can be reset. Preview first, then apply.' : 'Offsets can only be reset while the group has no members (stop its consumers first).';
      const topics = [...new Set(group.partitions.map((p) => p.topic))];
      if (topic.options.length - 1 !== topics.length) {
        const keep = topic.value;
        replace(topic, h('option', { value: '' }, 'every committed partition'), topics.map((t) => h('option', { value: t }, t)));
        topic.value = topics.includes(keep) ? keep : '';
      }
    }
    return { title: `Group ${name}`, refresh };
  },
};

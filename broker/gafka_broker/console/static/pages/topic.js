// One topic: partitions (leader, replicas, ISR, watermarks, size), configs with edit, add partitions, delete.
import { api } from '../api.js';
import { bytes, confirmAction, field, h, number, pill, replace, showError, table } from '../ui.js';

export default {
  mount(root, { arg: name }) {
    const summary = h('p', { class: 'note', id: 'topic-summary' });
    const partitions = h('div', { id: 'topic-partitions' });
    const configs = h('div', { id: 'topic-configs' });
    const status = h('span', { role: 'status', id: 'topic-status' });
    const count = h('input', { type: 'number', min: 1, id: 'partition-count', 'aria-label': 'New partition count' });
    const grow = h('form', { class: 'inline', id: 'add-partitions' }, field('Partitions (new total)', count), h('button', { type: 'submit' }, 'Add partitions'));
    const del = h('button', { class: 'danger', type: 'button', id: 'delete-topic' }, 'Delete topic');
    let current = null;
    let editing = false;

    const done = (text) => {
      status.textContent = text;
      status.className = 'ok';
    };
    grow.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await api.alterTopic(name, { partitions: Number(count.value) });
        done(`${name} now has ${count.value} partitions`);
        await refresh();
      } catch (error) {
        showError(error, 'Could not add partitions');
      }
    });
    del.addEventListener('click', async () => {
      const typed = h('input', { id: 'confirm-name', 'aria-label': 'Type the topic name to confirm', autocomplete: 'off' });
      const ok = await confirmAction(
        `Delete topic ${name}?`,
        [h('p', {}, 'Its data and every group\'s committed offsets for it are removed. This cannot be undone.'), field(`Type ${name} to confirm`, typed)],
        'Delete',
      );
      if (!ok) return;
      if (typed.value !== name) {
        showError({ message: 'the name typed does not match; nothing was deleted' }, 'Delete cancelled');
        return;
      }
      try {
        await api.deleteTopic(name);
        location.hash = '#/topics';
      } catch (error) {
        showError(error, `Could not delete ${name}`);
      }
    });

    root.append(
      h('p', {}, h('a', { href: '#/topics' }, '← Topics')),
      h('h1', {}, 'Topic ', h('span', { class: 'mono' }, name)),
      summary,
      h('div', { class: 'toolbar' },
        h('a', { href: `#/messages?topic=${encodeURIComponent(name)}` }, 'Browse messages'),
        h('a', { href: `#/produce?topic=${encodeURIComponent(name)}` }, 'Produce a message')),
      h('h2', {}, 'Partitions'),
      partitions,
      grow,
      h('h2', {}, 'Configs'),
      configs,
      h('h2', {}, 'Danger zone'),
      del,
      status,
    );

    function renderConfigs(topic) {
      const inputs = new Map();
      const rows = Object.entries(topic.configs).sort().map(([key, value]) => {
        const overridden = key in topic.config_overrides;
        const input = h('input', { value, 'aria-label': key, 'data-config': key, size: 22 });
        input.addEventListener('focus', () => (editing = true));
        inputs.set(key, input);
        const reset = overridden
          ? h('button', { type: 'button', 'aria-label': `Reset ${key} to its default`, onclick: () => save({ [key]: null }) }, 'Reset')
          : '';
        return [h('span', { class: 'mono' }, key), input, overridden ? pill('set', 'info') : h('span', { class: 'muted' }, 'default'), reset];
      });
      const form = h('form', { id: 'config-form' }, table(['Config', 'Value', 'Source', ''], rows),
        h('div', { class: 'toolbar' }, h('button', { class: 'primary', type: 'submit' }, 'Save configs'),
          h('button', { type: 'button', onclick: () => { editing = false; refresh(); } }, 'Discard')));
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        const changed = {};
        for (const [key, input] of inputs) if (input.value !== topic.configs[key]) changed[key] = input.value;
        save(changed);
      });
      replace(configs, form);
    }

    async function save(changed) {
      if (!Object.keys(changed).length) {
        done('No config changed');
        return;
      }
      try {
        await api.alterTopic(name, { configs: changed });
        editing = false;
        done(`Saved ${Object.keys(changed).join(', ')}`);
        await refresh();
      } catch (error) {
        showError(error, 'Could not change configs');
      }
    }

    async function refresh() {
      const topic = await api.topic(name);
      current = topic;
      const rows = topic.partitions.map((p) => [
        { value: String(p.partition) },
        p.leader < 0 ? pill('offline', 'down') : String(p.leader),
        p.replicas.join(', '),
        p.isr.length < p.replicas.length ? pill(p.isr.join(', ') || 'none', 'fenced') : p.isr.join(', '),
        { value: String(p.leader_epoch) },
        { value: number(p.log_start_offset) },
        { value: number(p.high_watermark) },
        { value: number(p.log_end_offset) },
        { value: bytes(p.size_bytes) },
      ]);
      replace(
        partitions,
        table(
          [{ label: 'Partition', num: true }, 'Leader', 'Replicas', 'ISR', { label: 'Epoch', num: true },
            { label: 'Start', num: true }, { label: 'High watermark', num: true }, { label: 'End', num: true }, { label: 'Size', num: true }],
          rows,
        ),
      );
      summary.textContent = `${topic.partitions.length} partitions, replication factor ${topic.replication_factor}, id ${topic.topic_id}${topic.internal ? ' (internal)' : ''}`;
      if (!count.value || document.activeElement !== count) count.value = String(topic.partitions.length);
      count.min = String(topic.partitions.length);
      if (!editing) renderConfigs(topic);
    }
    return { title: `Topic ${name}`, refresh, get topic() { return current; } };
  },
};

// Produce one message: key, value (text, JSON or base64), headers, partition.
import { api } from '../api.js';
import { field, h, replace, showError } from '../ui.js';

export default {
  mount(root, { query }) {
    const topic = h('select', { id: 'produce-topic', 'aria-label': 'Topic' });
    const partition = h('input', { id: 'produce-partition', type: 'number', min: 0, placeholder: 'by key', 'aria-label': 'Partition' });
    const format = h('select', { id: 'produce-format', 'aria-label': 'Key and value are' },
      h('option', { value: 'string' }, 'text'), h('option', { value: 'json' }, 'JSON'), h('option', { value: 'base64' }, 'base64'));
    const key = h('input', { id: 'produce-key', 'aria-label': 'Key', placeholder: 'none' });
    const value = h('textarea', { id: 'produce-value', 'aria-label': 'Value' });
    const headers = h('textarea', { id: 'produce-headers', 'aria-label': 'Headers', placeholder: 'name: value (one per line)', style: 'min-height: 50px' });
    const result = h('p', { role: 'status', id: 'produce-result', class: 'note' });
    const form = h('form', { id: 'produce-form' },
      h('div', { class: 'inline' }, field('Topic', topic), field('Partition', partition), field('Key and value are', format)),
      field('Key', key), field('Value', value), field('Headers', headers),
      h('div', { class: 'toolbar' }, h('button', { class: 'primary', type: 'submit' }, 'Produce')), result);
    root.append(h('h1', {}, 'Produce a message'), form);

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      let parsedValue = value.value;
      let parsedKey = key.value === '' ? null : key.value;
      try {
        if (format.value === 'json') {
          parsedValue = JSON.parse(value.value);
          if (parsedKey !== null) parsedKey = JSON.parse(parsedKey);
        }
      } catch (error) {
        showError({ code: 'INVALID_JSON', message: error.message }, 'The key or value is not JSON');
        return;
      }
      const record = { key: parsedKey, value: parsedValue };
      const lines = headers.value.split('\n').map((l) => l.trim()).filter(Boolean);
      if (lines.length) record.headers = lines.map((l) => {
        const at = l.indexOf(':');
        return at < 0 ? { key: l, value: null } : { key: l.slice(0, at).trim(), value: l.slice(at + 1).trim() };
      });
      if (partition.value !== '') record.partition = Number(partition.value);
      try {
        const answer = await api.produce(topic.value, { key_format: format.value, value_format: format.value, records: [record] });
        const [first] = answer.offsets;
        if (first.error_code) throw Object.assign(new Error(first.message), { code: first.error_code });
        result.className = 'note ok';
        result.textContent = `Written to partition ${first.partition} at offset ${first.offset}.`;
      } catch (error) {
        result.textContent = '';
        showError(error, 'Could not produce');
      }
    });

    let started = false;
    return {
      title: 'Produce',
      async refresh() {
        if (started) return;
        started = true;
        const { topics } = await api.topics();
        replace(topic, topics.map((t) => h('option', { value: t.name }, t.name)));
        if (query.get('topic')) topic.value = query.get('topic');
      },
    };
  },
};

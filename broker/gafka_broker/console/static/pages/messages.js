// Message browser: by partition and offset, by timestamp, newest first, live tail; search in keys, values
// and headers; keys and values decoded as text, pretty JSON, base64 or hex; download what is shown.
import { api } from '../api.js';
import { decode, headerText, matches } from '../decode.js';
import { field, h, replace, showError, table, time } from '../ui.js';

const MAX_SHOWN = 1000;

function select(id, label, options, value) {
  const node = h('select', { id, 'aria-label': label }, options.map(([v, text]) => h('option', { value: v }, text)));
  if (value !== undefined) node.value = value;
  return node;
}

export default {
  mount(root, { query }) {
    const topic = select('msg-topic', 'Topic', [], undefined);
    const partition = select('msg-partition', 'Partition', [['all', 'All partitions']]);
    const mode = select('msg-mode', 'Start', [['newest', 'Newest first'], ['offset', 'From offset'], ['timestamp', 'From time']], 'newest');
    const offset = h('input', { id: 'msg-offset', type: 'number', min: 0, value: 0, 'aria-label': 'Offset' });
    const when = h('input', { id: 'msg-time', type: 'datetime-local', step: 1, 'aria-label': 'Time (UTC)' });
    const limit = h('input', { id: 'msg-limit', type: 'number', min: 1, max: MAX_SHOWN, value: 50, 'aria-label': 'How many' });
    const keyAs = select('msg-key-format', 'Show keys as', [['auto', 'auto'], ['text', 'text'], ['json', 'JSON'], ['base64', 'base64'], ['hex', 'hex']], 'auto');
    const valueAs = select('msg-value-format', 'Show values as', [['auto', 'auto'], ['text', 'text'], ['json', 'JSON'], ['base64', 'base64'], ['hex', 'hex']], 'auto');
    const search = h('input', { id: 'msg-search', type: 'search', placeholder: 'text or hex', 'aria-label': 'Search' });
    const scope = select('msg-search-in', 'Search in', [['any', 'key, value, headers'], ['key', 'key'], ['value', 'value'], ['header', 'headers']], 'any');
    const load = h('button', { class: 'primary', type: 'submit', id: 'msg-load' }, 'Load');
    const tail = h('button', { type: 'button', id: 'msg-tail', 'aria-pressed': 'false' }, 'Live tail');
    const download = h('button', { type: 'button', id: 'msg-download' }, 'Download');
    const status = h('p', { class: 'note', role: 'status', id: 'msg-status' });
    const results = h('div', { id: 'msg-results' });
    let records = [];
    let tailing = null;

    const form = h('form', { class: 'inline', id: 'msg-form' },
      field('Topic', topic), field('Partition', partition), field('Start', mode), field('Offset', offset),
      field('Time (UTC)', when), field('How many', limit), load, tail);
    const view = h('div', { class: 'toolbar' }, field('Keys as', keyAs), field('Values as', valueAs), field('Search', search), field('Search in', scope), download);
    root.append(h('h1', {}, 'Messages'), form, view, status, results);

    const syncMode = () => {
      offset.parentElement.hidden = mode.value !== 'offset';
      when.parentElement.hidden = mode.value !== 'timestamp';
    };
    mode.addEventListener('change', syncMode);
    for (const control of [keyAs, valueAs, scope]) control.addEventListener('change', render);
    search.addEventListener('input', render);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      stopTail();
      loadRecords();
    });
    topic.addEventListener('change', () => loadPartitions());
    tail.addEventListener('click', () => (tailing ? stopTail() : startTail()));
    download.addEventListener('click', () => {
      const shown = visible().map((r) => ({ ...r, key_text: decode(r.key, 'auto').text, value_text: decode(r.value, 'auto').text, headers_text: (r.headers || []).map((hd) => [hd.key, headerText(hd)]) }));
      const blob = new Blob([JSON.stringify({ topic: topic.value, records: shown }, null, 2)], { type: 'application/json' });
      const link = h('a', { href: URL.createObjectURL(blob), download: `${topic.value}-records.json` });
      document.body.append(link);
      link.click();
      link.remove();
    });
    syncMode();

    async function loadTopics() {
      const { topics } = await api.topics(true);
      const wanted = query.get('topic') || topic.value;
      replace(topic, topics.map((t) => h('option', { value: t.name }, t.name)));
      if (wanted && topics.some((t) => t.name === wanted)) topic.value = wanted;
      await loadPartitions();
    }

    let described = null;
    async function loadPartitions() {
      if (!topic.value) return;
      described = await api.topic(topic.value);
      const keep = partition.value;
      replace(partition, h('option', { value: 'all' }, 'All partitions'), described.partitions.map((p) => h('option', { value: String(p.partition) }, `Partition ${p.partition}`)));
      if ([...partition.options].some((o) => o.value === keep)) partition.value = keep;
    }

    const chosen = () => described.partitions.filter((p) => partition.value === 'all' || String(p.partition) === partition.value);

    async function readFrom(p, start, want) {
      const out = [];
      let next = start;
      while (out.length < want) {
        const answer = await api.fetch(topic.value, p.partition, { offset: next, max_wait_ms: 0, max_bytes: 1048576 });
        for (const r of answer.records) out.push({ partition: p.partition, ...r });
        if (!answer.records.length || answer.next_offset >= answer.high_watermark) break;
        next = answer.next_offset;
      }
      return out.slice(0, want);
    }

    async function loadRecords() {
      if (!topic.value) return;
      const want = Math.min(MAX_SHOWN, Math.max(1, Number(limit.value) || 50));
      status.textContent = 'Loading…';
      try {
        await loadPartitions();
        const parts = chosen();
        const per = await Promise.all(parts.map(async (p) => {
          if (p.leader < 0) throw Object.assign(new Error(`partition ${p.partition} has no leader`), { code: 'LEADER_NOT_AVAILABLE' });
          let start;
          if (mode.value === 'newest') start = Math.max(p.log_start_offset ?? 0, (p.high_watermark ?? 0) - want);
          else if (mode.value === 'offset') start = Number(offset.value) || 0;
          else {
            const ms = when.value ? Date.parse(`${when.value}Z`) : 0;
            start = (await api.offsetAt(topic.value, p.partition, ms)).offset;
          }
          return readFrom(p, start, want);
        }));
        let all = per.flat();
        if (mode.value === 'newest') all.sort((a, b) => b.timestamp - a.timestamp || b.offset - a.offset);
        else all.sort((a, b) => a.timestamp - b.timestamp || a.partition - b.partition || a.offset - b.offset);
        records = all.slice(0, want);
        render();
      } catch (error) {
        status.textContent = '';
        showError(error, 'Could not read messages');
      }
    }

    function visible() {
      return records.filter((r) => matches(r, search.value.trim(), scope.value));
    }

    function shown(b64, as) {
      const decoded = decode(b64, as);
      return h('div', {}, h('pre', {}, decoded.text), h('span', { class: 'muted', style: 'font-size: 11px' }, decoded.format));
    }

    function render() {
      const rows = visible().map((r) => [
        { value: String(r.partition) },
        { value: String(r.offset) },
        h('span', { class: 'mono' }, time(r.timestamp)),
        shown(r.key, keyAs.value),
        shown(r.value, valueAs.value),
        (r.headers || []).length
          ? h('div', {}, r.headers.map((hd) => h('div', { class: 'mono' }, `${hd.key}: ${headerText(hd)}`)))
          : h('span', { class: 'muted' }, 'none'),
      ]);
      status.textContent = `${rows.length} of ${records.length} loaded message(s) shown${tailing ? ' · live' : ''}`;
      replace(results, table([{ label: 'Partition', num: true }, { label: 'Offset', num: true }, 'Timestamp (UTC)', 'Key', 'Value', 'Headers'], rows, { empty: 'No messages.' }));
    }

    async function startTail() {
      await loadPartitions();
      const controller = new AbortController();
      tailing = controller;
      tail.setAttribute('aria-pressed', 'true');
      tail.textContent = 'Stop tail';
      records = [];
      render();
      for (const p of chosen()) {
        (async () => {
          let next = p.high_watermark ?? 0;
          while (!controller.signal.aborted) {
            try {
              const answer = await api.fetch(topic.value, p.partition, { offset: next, max_wait_ms: 5000 }, controller.signal);
              if (answer.records.length) {
                records = [...answer.records.map((r) => ({ partition: p.partition, ...r })).reverse(), ...records].slice(0, MAX_SHOWN);
                render();
              }
              next = answer.next_offset;
            } catch (error) {
              if (controller.signal.aborted) return;
              showError(error, `Live tail of partition ${p.partition}`);
              await new Promise((resolve) => setTimeout(resolve, 2000));
            }
          }
        })();
      }
    }

    function stopTail() {
      if (tailing) tailing.abort();
      tailing = null;
      tail.setAttribute('aria-pressed', 'false');
      tail.textContent = 'Live tail';
      if (records.length) render();
    }

    let started = false;
    return {
      title: 'Messages',
      async refresh() {
        if (started) return;
        started = true;
        await loadTopics();
        if (topic.value) await loadRecords();
      },
      unmount: stopTail,
    };
  },
};

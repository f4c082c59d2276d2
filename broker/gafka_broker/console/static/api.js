// The console's one way to the cluster: every call goes through here (so authentication, when it lands,
// is added in one place). Paths are the brokers' own HTTP API (docs/api.md), reached through the console's
// proxy: /api/cluster/... goes to any broker that answers, /api/brokers/{id}/... to that broker.

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

async function call(base, method, path, { body, query, signal } = {}) {
  const url = new URL(`${base}/${path.replace(/^\//, '')}`, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, String(value));
  }
  const init = { method, signal, headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'CONSOLE_UNREACHABLE', 'the console server does not answer');
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok || response.status === 207) {
    const code = (data && data.error_code) || `HTTP_${response.status}`;
    const message = (data && data.message) || text || response.statusText;
    if (response.ok) return data; // 207: per-record results, the caller reads them
    throw new ApiError(response.status, code, message, data);
  }
  return data;
}

const cluster = (method, path, options) => call('/api/cluster', method, path, options);
const broker = (id, method, path, options) => call(`/api/brokers/${id}`, method, path, options);
const enc = encodeURIComponent;

export const api = {
  cluster: () => cluster('GET', 'v1/cluster'),
  brokerStats: (id) => broker(id, 'GET', 'v1/broker'),

  topics: (internal = false) => cluster('GET', 'v1/topics', { query: { internal } }),
  topic: (name) => cluster('GET', `v1/topics/${enc(name)}`),
  createTopic: (body) => cluster('POST', 'v1/topics', { body }),
  alterTopic: (name, body) => cluster('PATCH', `v1/topics/${enc(name)}`, { body }),
  deleteTopic: (name) => cluster('DELETE', `v1/topics/${enc(name)}`),

  produce: (topic, body) => cluster('POST', `v1/topics/${enc(topic)}/records`, { body }),
  fetch: (topic, partition, query, signal) =>
    cluster('GET', `v1/topics/${enc(topic)}/partitions/${partition}/records`, {
      query: { key_format: 'base64', value_format: 'base64', ...query },
      signal,
    }),
  offsetAt: (topic, partition, at) =>
    cluster('GET', `v1/topics/${enc(topic)}/partitions/${partition}/offsets`, { query: { at } }),

  group: (group) => cluster('GET', `v1/groups/${enc(group)}`),
  groupOffsets: (group) => cluster('GET', `v1/groups/${enc(group)}/offsets`),
  resetOffsets: (group, body) => cluster('POST', `v1/groups/${enc(group)}/offsets/reset`, { body }),
  deleteGroup: (group) => cluster('DELETE', `v1/groups/${enc(group)}`),

  groups: () => cluster('GET', 'v1/groups'),
};

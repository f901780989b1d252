// GET /containers/json: which containers `ps` lists, in Docker's order (newest first) and with Docker's
// filter semantics (moby daemon/list.go): values of one filter are alternatives, `label` filters must all
// hold, name/id/status values are regular expressions, `publish` matches host ports and `expose` container
// ports, `before`/`since` name a container, `-n` (limit) includes stopped containers.
import type { ContainerRecord } from '../core/types.ts';
import { invalidParameter, notFound } from '../util/errors.ts';
import { anyMatch } from '../util/filtermatch.ts';

const ACCEPTED = new Set(['ancestor', 'before', 'exited', 'id', 'isolation', 'label', 'name', 'status', 'health', 'since', 'volume', 'network', 'is-task', 'publish', 'expose']);
const STATES = ['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead'];

export interface ListSummary {
  Ports: { PrivatePort: number; PublicPort?: number; Type: string }[];
  NetworkSettings: { Networks: Record<string, { NetworkID: string }> };
}

export interface ListOptions {
  all: boolean;
  limit: number;
  filters: Record<string, string[]>;
  /** the list entry of a container (its ports and networks are what some filters look at) */
  summary: (c: ContainerRecord) => ListSummary;
  /** image id for an image reference, if there is such an image */
  imageId: (ref: string) => string | undefined;
}


/** Docker's State.Running: a container waiting to be restarted counts as running. */
export function isListedRunning(c: ContainerRecord): boolean {
  return c.state.Running || c.state.Restarting;
}

function portSet(key: string, values: string[]): Set<string> {
  const out = new Set<string>();
  for (const v of values) {
    if (v.includes(':')) throw invalidParameter(`filter for '${key}' should not contain ':': ${v}`);
    const [port = '', proto = 'tcp'] = v.split('/');
    const m = /^(\d+)(?:-(\d+))?$/.exec(port);
    if (!m) throw invalidParameter(`error while looking up for ${key} ${v}: invalid port range: ${port}`);
    const a = Number(m[1]), b = m[2] ? Number(m[2]) : a;
    if (b < a || b > 65535) throw invalidParameter(`error while looking up for ${key} ${v}: invalid port range: ${port}`);
    for (let p = a; p <= b; p++) out.add(`${p}/${proto.toLowerCase()}`);
  }
  return out;
}

function byRef(all: ContainerRecord[], ref: string): ContainerRecord {
  const name = ref.replace(/^\//, '');
  const c = all.find((x) => x.id === ref) ?? all.find((x) => x.name === name) ?? (/^[0-9a-f]+$/.test(ref) ? all.find((x) => x.id.startsWith(ref)) : undefined);
  if (!c) throw notFound(`No such container: ${ref}`);
  return c;
}

export function listContainers(records: ContainerRecord[], o: ListOptions): ContainerRecord[] {
  const f = o.filters;
  for (const k of Object.keys(f)) if (!ACCEPTED.has(k)) throw invalidParameter(`invalid filter '${k}'`);
  const exited = (f.exited ?? []).map((v) => {
    if (!/^[+-]?\d+$/.test(v)) throw invalidParameter(`invalid filter 'exited=${v}': strconv.Atoi: parsing "${v}": invalid syntax`);
    return Number(v);
  });
  let all = o.all;
  for (const v of f.status ?? []) {
    if (!STATES.includes(v)) throw invalidParameter(`invalid filter 'status=${v}': invalid value for state (${v}): must be one of ${STATES.join(', ')}`);
    all = true;
  }
  const sorted = [...records].sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
  let before = f.before?.length ? byRef(sorted, f.before[f.before.length - 1]!) : undefined;
  const since = f.since?.length ? byRef(sorted, f.since[f.since.length - 1]!) : undefined;
  const images = new Set((f.ancestor ?? []).map(o.imageId).filter((x): x is string => !!x));
  const publish = portSet('publish', f.publish ?? []);
  const expose = portSet('expose', f.expose ?? []);
  // name and id are Go regexps in moby (filters.Match); status values were checked above, so exact
  const matchName = anyMatch(f.name);
  const matchId = anyMatch(f.id);
  const match = (key: string, s: string[]) => !f[key]?.length || f[key]!.some((v) => s.includes(v));

  const out: ContainerRecord[] = [];
  for (const c of sorted) {
    if (before) {
      if (c.id === before.id) before = undefined;
      continue;
    }
    if (since && c.id === since.id) break;
    if (!isListedRunning(c) && !all && o.limit <= 0) continue;
    if (!matchName([`/${c.name}`, c.name])) continue;
    if (!matchId([c.id])) continue;
    const labels = c.config.Labels ?? {};
    if (!(f.label ?? []).every((v) => {
      const i = v.indexOf('=');
      return i < 0 ? v in labels : labels[v.slice(0, i)] === v.slice(i + 1);
    })) continue;
    if (o.limit > 0 && out.length === o.limit) break;
    if (exited.length && !(exited.includes(c.state.ExitCode) && !isListedRunning(c) && c.state.StartedAt !== '0001-01-01T00:00:00Z')) continue;
    if (!match('status', [c.state.Status])) continue;
    if (f.ancestor && !images.has(c.imageId)) continue;
    // moby: a volume's name (a bind's source) or any mount's destination
    if (f.volume?.length && !f.volume.some((v) => (c.mounts ?? []).some((m) => m.Destination === v || (m.Name || m.Source) === v))) continue;
    if (f.network?.length || publish.size || expose.size) {
      const s = o.summary(c);
      const nets = s.NetworkSettings?.Networks ?? {};
      if (f.network?.length && !f.network.some((v) => v in nets || Object.values(nets).some((n) => n?.NetworkID && n.NetworkID.startsWith(v)))) continue;
      if ((publish.size || expose.size) && !s.Ports.some((p) => publish.has(`${p.PublicPort ?? 0}/${p.Type}`) || expose.has(`${p.PrivatePort}/${p.Type}`))) continue;
    }
    out.push(c);
  }
  return out;
}

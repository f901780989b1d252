// `-p` and `--expose` as the docker CLI reads them (go-connections' nat.ParsePortSpecs and the CLI's
// convertToStandardNotation), with its error messages, so that `loom run` refuses exactly what `docker run`
// refuses and sends the daemon the same ExposedPorts / PortBindings. Values the CLI lets through (a host
// port 0 means "any", a container port 0) are left to the daemon, as docker does.

/** A -p or --expose value the docker CLI would refuse; the message is docker's. */
export class PortSpecError extends Error {}

export type PortBindings = Record<string, { HostIp: string; HostPort: string }[]>;

const PROTOS = ['tcp', 'udp', 'sctp'];

/** Go's strconv.ParseUint(s, 10, 16): the number, or Go's error text. */
function parseUint16(s: string): number | string {
  if (!/^\d+$/.test(s)) return `strconv.ParseUint: parsing ${JSON.stringify(s)}: invalid syntax`;
  const n = Number(s);
  return n <= 65535 ? n : `strconv.ParseUint: parsing ${JSON.stringify(s)}: value out of range`;
}

/** nat.ParsePortRange: "N" or "N-M" with M >= N; the range, or the error text. */
function parsePortRange(s: string): [number, number] | string {
  if (!s) return 'empty string specified for ports';
  const parts = s.split('-');
  const a = parseUint16(parts[0]!);
  if (typeof a === 'string') return a;
  if (parts.length === 1) return [a, a];
  const b = parseUint16(parts[1]!);
  if (typeof b === 'string') return b;
  if (b < a) return `invalid range specified for port: ${s}`;
  return [a, b];
}

/** nat.SplitProtoPort: "80/udp" → ['udp', '80']; no protocol means tcp. */
function splitProtoPort(raw: string): [string, string] {
  const parts = raw.split('/');
  if (!raw || !parts[0]) return ['', ''];
  if (parts.length === 1) return ['tcp', raw];
  if (!parts[1]) return ['tcp', parts[0]];
  return [parts[1], parts[0]];
}

/** nat's splitParts: [ip:[hostPort:]]containerPort, where the ip may itself contain colons (IPv6). */
function splitParts(raw: string): [string, string, string] {
  const parts = raw.split(':');
  const n = parts.length;
  const ctr = parts[n - 1]!;
  if (n === 1) return ['', '', ctr];
  if (n === 2) return ['', parts[0]!, ctr];
  if (n === 3) return [parts[0]!, parts[1]!, ctr];
  return [parts.slice(0, n - 2).join(':'), parts[n - 2]!, ctr];
}

function isIp(s: string): boolean {
  // Go's net.ParseIP: dotted quad or IPv6 text, no zone, no brackets
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(s)) return s.split('.').every((o) => Number(o) <= 255);
  try {
    return s.includes(':') && !s.includes('%') && new URL(`http://[${s}]/`).hostname.length > 2;
  } catch {
    return false;
  }
}

/** The long syntax (`published=8080,target=80,protocol=udp`) becomes the short one, as the docker CLI does. */
function standardNotation(spec: string): string {
  if (!spec.includes('=')) return spec;
  const params: Record<string, string> = { protocol: 'tcp' };
  for (const param of spec.split(',')) {
    const i = param.indexOf('=');
    if (i <= 0) throw new PortSpecError(`invalid publish opts format (should be name=value but got '${param}')`);
    params[param.slice(0, i)] = param.slice(i + 1);
  }
  return `${params.published ?? ''}:${params.target ?? ''}/${params.protocol}`;
}

/** One -p value → its mappings: container port key and host binding each. */
function parsePortSpec(rawIn: string): { key: string; HostIp: string; HostPort: string }[] {
  const raw = standardNotation(rawIn);
  let [ip, hostPort, ctrPart] = splitParts(raw);
  const [proto, containerPort] = splitProtoPort(ctrPart);
  if (ip.startsWith('[')) {
    if (!ip.endsWith(']')) throw new PortSpecError(`invalid IP address ${ip}: address ${ip}:: missing ']' in address`);
    ip = ip.slice(1, -1);
  }
  if (ip && !isIp(ip)) throw new PortSpecError(`invalid IP address: ${ip}`);
  if (!containerPort) throw new PortSpecError(`no port specified: ${raw}<empty>`);
  const c = parsePortRange(containerPort);
  if (typeof c === 'string') throw new PortSpecError(`invalid containerPort: ${containerPort}`);
  let h: [number, number] = [0, 0];
  if (hostPort) {
    const r = parsePortRange(hostPort);
    if (typeof r === 'string') throw new PortSpecError(`invalid hostPort: ${hostPort}`);
    h = r;
  }
  // A host range with a single container port is the range to pick one free host port from.
  if (hostPort && c[1] - c[0] !== h[1] - h[0] && c[1] !== c[0]) {
    throw new PortSpecError(`invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`);
  }
  if (!PROTOS.includes(proto.toLowerCase())) throw new PortSpecError(`invalid proto: ${proto}`);
  const out: { key: string; HostIp: string; HostPort: string }[] = [];
  for (let i = 0; i <= c[1] - c[0]; i++) {
    let hp = hostPort ? String(h[0] + i) : '';
    if (c[0] === c[1] && h[0] !== h[1]) hp = `${hp}-${h[1]}`;
    out.push({ key: `${c[0] + i}/${proto.toLowerCase()}`, HostIp: ip, HostPort: hp });
  }
  return out;
}

/** -p values → ExposedPorts + PortBindings, as `docker run` sends them. */
export function parsePublish(specs: string[]): { exposed: Record<string, object>; bindings: PortBindings } {
  const exposed: Record<string, object> = {};
  const bindings: PortBindings = {};
  for (const spec of specs) {
    for (const m of parsePortSpec(spec)) {
      exposed[m.key] = {};
      (bindings[m.key] ??= []).push({ HostIp: m.HostIp, HostPort: m.HostPort });
    }
  }
  return { exposed, bindings };
}

/** --expose PORT[/PROTO] or START-END[/PROTO], added to `exposed`. */
export function addExposed(exposed: Record<string, object>, specs: string[]): void {
  for (const e of specs) {
    if (e.includes(':')) throw new PortSpecError(`invalid port format for --expose: ${e}`);
    const [proto, port] = splitProtoPort(e);
    const r = parsePortRange(port);
    if (typeof r === 'string') throw new PortSpecError(`invalid range format for --expose: ${e}, error: ${r}`);
    for (let p = r[0]; p <= r[1]; p++) exposed[`${p}/${proto}`] = {};
  }
}

/** fvbommel/sortorder.NaturalLess as a comparator: runs of digits compare as numbers (`docker port` sorts with it). */
export function naturalCompare(a: string, b: string): number {
  const digit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    const c1 = a[i]!, c2 = b[j]!;
    const d1 = digit(c1), d2 = digit(c2);
    if (d1 !== d2) return d1 ? -1 : 1; // digits before other characters
    if (!d1) {
      if (c1 !== c2) return c1 < c2 ? -1 : 1;
      i++;
      j++;
      continue;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    const s1 = i, s2 = j;
    while (digit(a[i])) i++;
    while (digit(b[j])) j++;
    if (i - s1 !== j - s2) return i - s1 - (j - s2);
    const n1 = a.slice(s1, i), n2 = b.slice(s2, j);
    if (n1 !== n2) return n1 < n2 ? -1 : 1;
    if (s1 !== s2) return s1 - s2;
  }
  return (a.length - i) - (b.length - j) || a.length - b.length;
}

/** Go's net.JoinHostPort. */
export function joinHostPort(host: string, port: string): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

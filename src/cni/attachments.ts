// Namespaces loom did not create, attached to loom networks for another runtime through CNI (bin/loom-cni
// asks POST /loom/cni/*). An attachment is an endpoint like a container's — loom's IPAM, the network's
// driver (its firewall comes with the network), the embedded DNS — owned by the runtime's container id
// and interface name instead of a loom container, and kept in the store's `endpoints` table so a daemon
// restart keeps its address and veth.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { Daemon } from '../daemon.ts';
import type { EndpointRecord, NetworkRecord } from '../core/types.ts';
import { parseResolvConf } from '../core/etcfiles.ts';
import { conflict, invalidParameter, LoomError, messageOf, notFound } from '../util/errors.ts';

export interface CniRequest {
  containerId: string;
  netns: string;
  ifname: string;
  /** the loom network (name or id) the config names */
  network: string;
  /** CNI_ARGS, parsed (K8S_POD_NAME and friends) */
  args?: Record<string, string>;
}

export interface Attachment {
  /** the store's key: the endpoint id */
  id: string;
  /** `<containerId>/<ifname>`: CNI's identity of an attachment */
  name: string;
  containerId: string;
  ifname: string;
  netns: string;
  networkId: string;
  names: string[];
  ep: EndpointRecord;
  created: string;
  /** DEL answered, its veth still being deleted (in the background; its address stays reserved until then) */
  going?: boolean;
}

/** The CNI result (spec 1.x "Success"): interfaces, ips, routes, dns. */
export interface CniResult {
  cniVersion?: string;
  interfaces: { name: string; mac: string; sandbox?: string }[];
  ips: { address: string; gateway?: string; interface: number }[];
  routes: { dst: string; gw?: string }[];
  dns: { nameservers?: string[]; search?: string[] };
}

const keyOf = (containerId: string, ifname: string) => `${containerId}/${ifname}`;
/** An attachment's identity in the embedded DNS: one per runtime container (all its interfaces). */
const dnsId = (a: { containerId: string }) => `cni:${a.containerId}`;
const DNS_LABEL = /^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$/;

export class CniAttachments {
  private readonly d: Daemon;
  private readonly byKey = new Map<string, Attachment>();
  /** attachments DEL answered for, whose veth is being deleted: an ADD of the same key waits for it */
  private readonly going = new Map<string, { a: Attachment; done: Promise<void> }>();
  /** one request at a time: CNI calls for one container come in order, and IPAM is in one transaction anyway */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(d: Daemon) {
    this.d = d;
    for (const a of d.store.all<Attachment>('endpoints')) this.byKey.set(a.name, a);
    // (those a previous run was still unplugging are finished by init())
    // (going ones too: their veths and addresses are still theirs)
    d.containers.externalEndpoints = () => [...this.byKey.values(), ...[...this.going.values()].map((g) => g.a)].map((a) => a.ep);
  }

  /**
   * After a restart: attachments whose namespace is gone (the runtime deleted it without DEL) go; the
   * others' names are served again.
   */
  async init(): Promise<void> {
    for (const a of [...this.byKey.values()]) {
      if (a.going || !fs.existsSync(a.netns) || !this.d.networks.find(a.networkId)) await this.drop(a).catch(() => {});
      else {
        this.registerNames(a);
        await this.startDns(a);
      }
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Attachments on a network (network inspect, network rm). */
  on(netId: string): Attachment[] {
    return [...this.byKey.values()].filter((a) => a.networkId === netId);
  }

  add(req: CniRequest): Promise<CniResult> {
    return this.serial(() => this.addNow(req));
  }

  private async addNow(req: CniRequest): Promise<CniResult> {
    validate(req);
    const net = this.network(req.network);
    const key = keyOf(req.containerId, req.ifname);
    await this.going.get(key)?.done;
    const cur = this.byKey.get(key);
    if (cur) throw conflict(`container ${req.containerId} already has ${req.ifname} attached to loom network ${this.d.networks.find(cur.networkId)?.name ?? cur.networkId}: DEL it first`);
    if (!fs.existsSync(req.netns)) throw invalidParameter(`network namespace ${req.netns} does not exist`);
    if (['host', 'null'].includes(net.driver) || this.d.networks.isGatewayNetwork(net)) throw invalidParameter(`network ${net.name} (driver ${net.driver}) takes no CNI attachments`);
    const nets = this.d.networks;
    const names = namesOf(req);
    const ep = this.d.store.tx(() => {
      const ep = nets.allocateEndpoint(nets.get(net.id), `cni:${key}`, req.ifname, { aliases: [] });
      const a: Attachment = { id: ep.id, name: key, containerId: req.containerId, ifname: req.ifname, netns: req.netns, networkId: net.id, names, ep, created: new Date().toISOString() };
      this.d.store.put('endpoints', a);
      this.byKey.set(key, a);
      return ep;
    });
    const a = this.byKey.get(key)!;
    try {
      await nets.join(ep, req.netns, true);
    } catch (e) {
      this.d.store.tx(() => {
        nets.releaseEndpoint(ep);
        this.d.store.delete('endpoints', ep.id);
      });
      this.byKey.delete(key);
      throw e;
    }
    ep.phase = 'ready';
    this.d.store.put('endpoints', a);
    this.registerNames(a);
    const dns = await this.startDns(a);
    this.d.events.publish('network', 'connect', net.id, { container: req.containerId, name: net.name, type: net.driver });
    return this.result(a, net, dns);
  }

  /**
   * DEL: succeeds when the attachment (or its network, or namespace) is already gone. Answered once the
   * attachment is out of the DNS and marked going; its veth is deleted after (the kernel's link deletion
   * waits for RCU, most of a DEL's time), and only then is its address released and its record deleted,
   * so nothing can get the address while the old interface still has it. A daemon that stops meanwhile
   * finishes the job at its next start.
   */
  del(req: Omit<CniRequest, 'network' | 'netns'> & { netns?: string; network?: string }): Promise<void> {
    return this.serial(async () => {
      const a = this.byKey.get(keyOf(req.containerId, req.ifname));
      if (!a) return;
      this.unname(a);
      a.going = true;
      this.d.store.put('endpoints', a);
      this.byKey.delete(a.name);
      const net = this.d.networks.find(a.networkId);
      if (net) this.d.events.publish('network', 'disconnect', net.id, { container: a.containerId, name: net.name, type: net.driver });
      const done = this.unplug(a).catch((e) => this.d.log.warn({ attachment: a.name, err: messageOf(e) }, 'cannot finish a CNI DEL'))
        .finally(() => { if (this.going.get(a.name)?.done === done) this.going.delete(a.name); });
      this.going.set(a.name, { a, done });
    });
  }

  /** Waits for the DELs still unplugging (tests, shutdown). */
  async settle(): Promise<void> {
    await Promise.all([...this.going.values()].map((g) => g.done));
  }

  /** CHECK: the attachment is known and its interface is in the namespace with its address. */
  check(req: CniRequest): Promise<void> {
    return this.serial(async () => {
      validate(req);
      const a = this.byKey.get(keyOf(req.containerId, req.ifname));
      if (!a) throw notFound(`no loom attachment for container ${req.containerId} interface ${req.ifname}`);
      const net = this.network(req.network);
      if (net.id !== a.networkId) throw invalidParameter(`container ${req.containerId} ${req.ifname} is attached to another loom network`);
      if (!fs.existsSync(a.netns)) throw new LoomError(500, `network namespace ${a.netns} is gone`);
      const r = spawnSync('nsenter', [`--net=${a.netns}`, '--', 'ip', '-o', 'addr', 'show', 'dev', a.ifname], { encoding: 'utf8' });
      if (r.status !== 0) throw new LoomError(500, `interface ${a.ifname} is missing in ${a.netns}`);
      if (a.ep.ipv4 && !r.stdout.includes(` ${a.ep.ipv4}/${a.ep.prefix4} `)) throw new LoomError(500, `interface ${a.ifname} in ${a.netns} lost its address ${a.ep.ipv4}/${a.ep.prefix4}`);
    });
  }

  /** GC: attachments on the network that the runtime no longer lists go. Returns what went. */
  gc(network: string, valid: { containerID: string; ifname: string }[]): Promise<string[]> {
    return this.serial(async () => {
      const net = this.network(network);
      const keep = new Set(valid.map((v) => keyOf(v.containerID, v.ifname)));
      const gone: string[] = [];
      for (const a of this.on(net.id)) {
        if (keep.has(a.name)) continue;
        await this.drop(a);
        gone.push(a.name);
      }
      return gone;
    });
  }

  /** STATUS: the network exists and can take attachments. */
  status(network: string): void {
    this.network(network);
  }

  private network(ref: string): NetworkRecord {
    if (!ref) throw invalidParameter('the CNI config names no loom network ("network": "NAME")');
    const n = this.d.networks.find(ref);
    if (!n) throw notFound(`network ${ref} not found`);
    return n;
  }

  /** An attachment goes at once: names, resolver, interface, address, record (GC, and a restart's cleanup). */
  private async drop(a: Attachment): Promise<void> {
    const net = this.d.networks.find(a.networkId);
    this.unname(a);
    this.byKey.delete(a.name);
    await this.unplug(a);
    if (net && !a.going) this.d.events.publish('network', 'disconnect', net.id, { container: a.containerId, name: net.name, type: net.driver });
  }

  /** Out of the embedded DNS; the resolver in its namespace goes with the container's last attachment. */
  private unname(a: Attachment): void {
    const names = this.d.containers.dnsNames;
    names.remove(dnsId(a), a.networkId);
    const others = [...this.byKey.values()].filter((o) => o !== a && o.containerId === a.containerId);
    // another interface of the container on the same network keeps the names
    for (const o of others) if (o.networkId === a.networkId) this.registerNames(o);
    if (!others.length) {
      names.removeContainer(dnsId(a));
      void this.d.containers.dns?.detach(dnsId(a)).catch((e) => this.d.log.warn({ attachment: a.name, err: messageOf(e) }, 'dns detach failed'));
    }
  }

  /** The interface goes, then the address and the record. */
  private async unplug(a: Attachment): Promise<void> {
    await this.d.networks.leave(a.ep).catch((e) => this.d.log.warn({ attachment: a.name, err: messageOf(e) }, 'cannot unplug a CNI attachment'));
    this.d.store.tx(() => {
      this.d.networks.releaseEndpoint(a.ep);
      this.d.store.delete('endpoints', a.id);
    });
  }

  private registerNames(a: Attachment): void {
    const net = this.d.networks.find(a.networkId);
    // also without names: the attachment's own questions are answered from this network's names
    if (!net || net.isDefault) return;
    this.d.containers.dnsNames.add({ containerId: dnsId(a), networkId: net.id, names: a.names, ipv4: a.ep.ipv4, ipv6: a.ep.ipv6, ptrName: `${a.names[0] ?? a.containerId}.${net.name}` }, net.name);
  }

  /**
   * The embedded DNS in the attachment's namespace, as a loom container on a user-defined network has it
   * (127.0.0.11:53; names of the container's networks, the rest forwarded to the host's resolvers, none
   * for internal networks). Returns its address for the result's `dns`, or null: the default bridge has
   * no embedded DNS in Docker, and a namespace whose 127.0.0.11:53 is taken (another resolver of the
   * runtime's) keeps it.
   */
  private async startDns(a: Attachment): Promise<string | null> {
    const dns = this.d.containers.dns;
    const net = this.d.networks.find(a.networkId);
    if (!dns || !net || net.isDefault) return null;
    const id = dnsId(a);
    const mine = [...this.byKey.values()].filter((o) => o.containerId === a.containerId).map((o) => this.d.networks.find(o.networkId));
    let host = { nameservers: [] as string[], search: [] as string[] };
    try { host = parseResolvConf(fs.readFileSync(this.d.opts.resolvConf, 'utf8')); } catch { /* none */ }
    const names = this.d.containers.dnsNames;
    names.setUpstreams(id, mine.every((n) => n?.internal) ? [] : host.nameservers);
    names.setSearch(id, host.search);
    try {
      await dns.attach(id, a.netns);
      return dns.address;
    } catch (e) {
      this.d.log.warn({ attachment: a.name, netns: a.netns, err: messageOf(e) }, 'no embedded DNS in a CNI namespace');
      return null;
    }
  }

  private result(a: Attachment, net: NetworkRecord, dns: string | null): CniResult {
    const ep = a.ep;
    const ips: CniResult['ips'] = [];
    const routes: CniResult['routes'] = [];
    if (ep.ipv4) ips.push({ address: `${ep.ipv4}/${ep.prefix4}`, ...(ep.gateway4 ? { gateway: ep.gateway4 } : {}), interface: 0 });
    if (ep.ipv6) ips.push({ address: `${ep.ipv6}/${ep.prefix6}`, ...(ep.gateway6 ? { gateway: ep.gateway6 } : {}), interface: 0 });
    if (!net.internal && ep.gateway4) routes.push({ dst: '0.0.0.0/0', gw: ep.gateway4 });
    if (!net.internal && ep.gateway6) routes.push({ dst: '::/0', gw: ep.gateway6 });
    return { interfaces: [{ name: a.ifname, mac: ep.mac, sandbox: a.netns }], ips, routes, dns: dns ? { nameservers: [dns] } : {} };
  }

  /** What `network inspect` lists of an attachment, keyed by the runtime's container id. */
  inspectEntry(a: Attachment) {
    return {
      Name: a.names[0] ?? a.containerId, EndpointID: a.ep.id, MacAddress: a.ep.mac,
      IPv4Address: a.ep.ipv4 ? `${a.ep.ipv4}/${a.ep.prefix4}` : '', IPv6Address: a.ep.ipv6 ? `${a.ep.ipv6}/${a.ep.prefix6}` : '',
    };
  }
}

function validate(req: CniRequest): void {
  if (!req.containerId) throw invalidParameter('CNI_CONTAINERID is required');
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(req.containerId)) throw invalidParameter(`invalid CNI_CONTAINERID ${req.containerId}: letters, digits, _ . - only`);
  if (!req.ifname) throw invalidParameter('CNI_IFNAME is required');
  if (req.ifname.length > 15 || !/^[a-zA-Z0-9_.-]+$/.test(req.ifname)) throw invalidParameter(`invalid CNI_IFNAME ${req.ifname}`);
  if (!req.netns || !req.netns.startsWith('/')) throw invalidParameter(`invalid CNI_NETNS ${req.netns ?? ''}: a namespace path is required`);
}

/** What the embedded DNS answers for an attachment: K8S_POD_NAME, else the container id (when a DNS label), and its first 12 characters. */
function namesOf(req: CniRequest): string[] {
  const out: string[] = [];
  const pod = req.args?.K8S_POD_NAME?.toLowerCase();
  if (pod && DNS_LABEL.test(pod)) out.push(pod);
  const id = req.containerId.toLowerCase();
  if (DNS_LABEL.test(id)) out.push(id);
  if (id.length > 12 && DNS_LABEL.test(id.slice(0, 12))) out.push(id.slice(0, 12));
  return [...new Set(out)];
}

const registry = new WeakMap<Daemon, CniAttachments>();

/** The daemon's CNI attachments (made on first use). */
export function cniOf(d: Daemon): CniAttachments {
  let c = registry.get(d);
  if (!c) {
    c = new CniAttachments(d);
    registry.set(d, c);
  }
  return c;
}

/** `network inspect` with the network's CNI attachments among its Containers (keyed by the runtime's id, sorted as Go's maps). */
export function withCniAttachments<T extends { Containers: Record<string, unknown> }>(d: Daemon, netId: string, out: T): T {
  const extra = cniOf(d).on(netId);
  if (!extra.length) return out;
  const all: Record<string, unknown> = { ...out.Containers };
  for (const a of extra) all[a.containerId] = cniOf(d).inspectEntry(a);
  out.Containers = Object.fromEntries(Object.entries(all).sort(([x], [y]) => (x < y ? -1 : 1)));
  return out;
}

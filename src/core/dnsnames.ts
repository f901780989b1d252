// The names the embedded DNS answers for: per user-defined network, container names, aliases and short
// ids → addresses. Kept as maps updated on every attach/detach, so a query is two Map lookups.
// Scoping: a container only sees names on the networks it is attached to.

export interface NameEntry {
  containerId: string;
  networkId: string;
  names: string[]; // lower-case
  ipv4?: string;
  ipv6?: string;
  ptrName: string; // container name (Docker answers PTR with the container name)
}

export class DnsNames {
  /** networkId → name → entries */
  private readonly byNet = new Map<string, Map<string, Set<NameEntry>>>();
  /** networkId → netName (for `name.netname` queries) */
  private readonly netNames = new Map<string, string>();
  /** containerId → networkIds it is attached to (with DNS) */
  private readonly attached = new Map<string, Set<string>>();
  /** containerId → upstream servers ([] = no forwarding) */
  private readonly upstreamOf = new Map<string, string[]>();
  /** containerId → its resolv.conf search domains (lower-case) */
  private readonly searchOf = new Map<string, string[]>();
  private readonly entries = new Map<string, NameEntry>(); // `${containerId}/${networkId}`
  /** containerId → its --link aliases on user-defined networks (alias → linked container's name), lower-case */
  private readonly linksOf = new Map<string, Map<string, string>>();
  /** ip → entries, for PTR */
  private readonly byIp = new Map<string, Set<NameEntry>>();

  /** told of every name registration (the cluster publishes those of overlay endpoints to other hosts) */
  onAdd?: (e: NameEntry, netName: string) => void;

  add(e: NameEntry, netName: string): void {
    this.remove(e.containerId, e.networkId);
    this.netNames.set(e.networkId, netName.toLowerCase());
    let m = this.byNet.get(e.networkId);
    if (!m) this.byNet.set(e.networkId, (m = new Map()));
    for (const n of e.names) {
      let s = m.get(n);
      if (!s) m.set(n, (s = new Set()));
      s.add(e);
    }
    for (const ip of [e.ipv4, e.ipv6]) {
      if (!ip) continue;
      let s = this.byIp.get(ip);
      if (!s) this.byIp.set(ip, (s = new Set()));
      s.add(e);
    }
    this.entries.set(`${e.containerId}/${e.networkId}`, e);
    let a = this.attached.get(e.containerId);
    if (!a) this.attached.set(e.containerId, (a = new Set()));
    a.add(e.networkId);
    this.onAdd?.(e, netName);
  }

  remove(containerId: string, networkId: string): void {
    const k = `${containerId}/${networkId}`;
    const e = this.entries.get(k);
    if (!e) return;
    this.entries.delete(k);
    const m = this.byNet.get(networkId);
    for (const n of e.names) {
      const s = m?.get(n);
      s?.delete(e);
      if (s && s.size === 0) m!.delete(n);
    }
    for (const ip of [e.ipv4, e.ipv6]) {
      const s = ip ? this.byIp.get(ip) : undefined;
      s?.delete(e);
      if (s && s.size === 0) this.byIp.delete(ip!);
    }
    this.attached.get(containerId)?.delete(networkId);
  }

  removeContainer(containerId: string): void {
    for (const n of [...(this.attached.get(containerId) ?? [])]) this.remove(containerId, n);
    this.attached.delete(containerId);
    this.upstreamOf.delete(containerId);
    this.searchOf.delete(containerId);
    this.linksOf.delete(containerId);
  }

  /**
   * Docker's links on user-defined networks: `--link db:alias` lets the linking container (only it) resolve
   * `alias` to db, as long as db is on a network they share. The alias is no name of the linking container.
   */
  setLinks(containerId: string, links: { alias: string; name: string }[]): void {
    const m = new Map(links.map((l) => [l.alias.toLowerCase(), l.name.toLowerCase()] as const));
    if (m.size) this.linksOf.set(containerId, m);
    else this.linksOf.delete(containerId);
  }

  setUpstreams(containerId: string, servers: string[]): void {
    this.upstreamOf.set(containerId, servers);
  }

  /**
   * The search domains of the container's resolv.conf. A name of ours followed by one of them is ours too:
   * resolvers that only try the search list for a dotless name (busybox nslookup does) still find
   * containers. (Docker itself forwards such names; a real host of that name in a search domain is
   * shadowed here, which is the price.)
   */
  setSearch(containerId: string, domains: string[]): void {
    const list = domains.map((d) => d.toLowerCase().replace(/^\.+|\.+$/g, '')).filter(Boolean);
    if (list.length) this.searchOf.set(containerId, list);
    else this.searchOf.delete(containerId);
  }

  lookup(asker: string, qname: string, family: 4 | 6): string[] | null {
    const nets = this.attached.get(asker);
    if (!nets || nets.size === 0) return null;
    let name = qname.toLowerCase();
    if (name.endsWith('.')) name = name.slice(0, -1);
    let found = this.find(nets, name);
    const linked = this.linksOf.get(asker)?.get(name);
    if (!found && linked) found = this.find(nets, linked);
    if (!found) {
      for (const d of this.searchOf.get(asker) ?? []) {
        if (name.length > d.length + 1 && name.endsWith(`.${d}`)) {
          found = this.find(nets, name.slice(0, -d.length - 1));
          if (found) break;
        }
      }
    }
    if (!found) return null;
    const out: string[] = [];
    for (const s of found) for (const e of s) {
      const ip = family === 4 ? e.ipv4 : e.ipv6;
      if (ip && !out.includes(ip)) out.push(ip);
    }
    return out;
  }

  /** The entries named `name` on the given networks, plain or qualified by the network's name (`c1.mynet`). */
  private find(nets: Set<string>, name: string): Set<NameEntry>[] | null {
    const found: Set<NameEntry>[] = [];
    for (const netId of nets) {
      const m = this.byNet.get(netId);
      let s = m?.get(name);
      if (!s) {
        const suffix = `.${this.netNames.get(netId)}`;
        if (name.endsWith(suffix)) s = m?.get(name.slice(0, -suffix.length));
      }
      if (s && s.size) found.push(s);
    }
    return found.length ? found : null;
  }

  reverse(asker: string, ip: string): string | null {
    const nets = this.attached.get(asker);
    const s = this.byIp.get(ip);
    if (!nets || !s) return null;
    for (const e of s) if (nets.has(e.networkId)) return e.ptrName;
    return null;
  }

  upstreams(asker: string): string[] {
    return this.upstreamOf.get(asker) ?? [];
  }
}

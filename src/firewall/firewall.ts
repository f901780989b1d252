// The firewall: loom's desired nftables state in memory, and every change to it as ONE nft transaction.
//
// Ports and links (one per container start/stop) are map/set elements, added and deleted incrementally.
// Networks (rare) rewrite both tables from the full state, ports and links included, which keeps the
// per-network rules plain and Docker-like without tracking rule handles. Either way the in-memory state
// moves only after nft accepted the transaction, so a failure leaves both kernel and memory as they were.
import type { FwChange, FwLink, FwNetwork, FwPort, FwState } from './model.ts';
import {
  FwInputError, describeLink, describePort, linkKey, normLink, normNetwork, normPorts, portKey, portsOverlap,
  linkElement, portElementText, renderAddLinks, renderAddPorts, renderDeleteAll, renderDeleteLinks, renderDeletePorts,
  renderRuleset,
} from './ruleset.ts';
import { linkOp, portOp, type ElemOp, type ElementWriter } from './nfnl.ts';
import { conflict, invalidParameter, messageOf, systemError } from '../util/errors.ts';

/** What the firewall needs of Nft: one transaction per call. Tests pass a recorder. */
export interface NftRunner {
  run(commands: string): string;
  close(): void;
}

interface Working {
  networks: Map<string, FwNetwork>;
  ports: Map<string, FwPort>;
  links: Map<string, FwLink>;
}

const samePort = (a: FwPort, b: FwPort) => portKey(a) === portKey(b) && a.containerIp === b.containerIp
  && a.containerPort === b.containerPort && a.containerPortEnd === b.containerPortEnd && a.bridge === b.bridge;

const sameNetwork = (a: FwNetwork, b: FwNetwork) => JSON.stringify(a) === JSON.stringify(b);

/** Input errors become 400s naming the value; everything from ruleset.ts's checks is such an error. */
function checked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FwInputError) throw invalidParameter(`firewall: ${e.message}`);
    throw e;
  }
}

export class Firewall {
  private readonly nft: NftRunner;
  private cur: Working = { networks: new Map(), ports: new Map(), links: new Map() };

  /**
   * Writes element changes (ports, links: one per container start and stop) as an nf_tables netlink batch
   * directly (nfnl.ts), skipping libnftables' re-read of the namespace's ruleset. Without one (unit tests
   * with a recorder), they go through `nft` as text like everything else.
   */
  private readonly elements: ElementWriter | null;

  constructor(nft: NftRunner, elements?: ElementWriter) {
    this.nft = nft;
    this.elements = elements ?? null;
  }

  /** Replaces both loom tables with exactly `desired`, in one transaction (after a restart or an external flush). */
  reconcile(desired: FwState): void {
    const next: Working = { networks: new Map(), ports: new Map(), links: new Map() };
    checked(() => {
      for (const n of desired.networks ?? []) this.putNetwork(next, normNetwork(n));
      for (const p of desired.ports ?? []) for (const e of normPorts(p)) this.putPort(next, e);
      for (const l of desired.links ?? []) this.putLink(next, normLink(l));
    });
    this.run(renderRuleset(toState(next)) + this.extraText(), 'reconcile');
    this.cur = next;
    this.syncHostForward();
  }

  /**
   * Coexistence with iptables(-nft) rules: in nftables a packet must be accepted by every base chain of a
   * hook, so a host FORWARD chain with policy DROP (what Docker leaves behind, or a host firewall) would
   * drop containers' traffic whatever loom's own table says. As Docker does with DOCKER-USER, loom keeps
   * one jump at the top of the `filter` table's FORWARD chain (when that chain exists) to its chain
   * LOOM-FORWARD, which first jumps to LOOM-USER (created once, never touched again: the user's own rules
   * go there and win), then accepts what goes to or comes from loom's bridges; loom's own table still
   * makes every isolation, icc and internal decision. Best effort: a failure is logged, never fatal.
   * Returns the families it adjusted.
   */
  syncHostForward(): string[] {
    const done: string[] = [];
    if (!this.coexist) return done;
    const bridges = [...new Set([...this.cur.networks.values()].map((n) => n.bridge))].sort();
    for (const fam of ['ip', 'ip6']) {
      let forward: string;
      try {
        forward = this.nft.run(`list chain ${fam} filter FORWARD\n`);
      } catch {
        continue; // no iptables FORWARD chain in this family: nothing to coexist with
      }
      if (!/chain FORWARD/.test(forward)) continue;
      const lines = [
        `add chain ${fam} filter LOOM-USER`,
        `add chain ${fam} filter LOOM-FORWARD`,
        `flush chain ${fam} filter LOOM-FORWARD`,
        `add rule ${fam} filter LOOM-FORWARD counter jump LOOM-USER`,
        ...bridges.flatMap((b) => [
          `add rule ${fam} filter LOOM-FORWARD oifname ${JSON.stringify(b)} counter accept`,
          `add rule ${fam} filter LOOM-FORWARD iifname ${JSON.stringify(b)} counter accept`,
        ]),
      ];
      if (!/jump LOOM-FORWARD/.test(forward)) lines.push(`insert rule ${fam} filter FORWARD counter jump LOOM-FORWARD`);
      try {
        this.nft.run(lines.join('\n') + '\n');
        done.push(fam);
      } catch (e) {
        this.onWarning?.(`firewall: cannot open the host's ${fam} filter FORWARD chain to loom's bridges: ${messageOf(e)}`);
      }
    }
    return done;
  }

  /** nft's canonical listing of loom's tables (a missing one says so): equal states list alike. */
  listing(): string {
    return ['ip', 'ip6'].map((f) => {
      try {
        return this.nft.run(`list table ${f} loom\n`);
      } catch {
        return `(table ${f} loom missing)\n`;
      }
    }).join('');
  }

  /**
   * Temporary chains inside loom's tables that outlive whole-table rewrites (network trace's `meta nftrace
   * set 1` rules): `add` is nft text that creates them, `remove` deletes them. A rewrite (a network change,
   * a self-heal) replays every `add` in the same transaction, so a trace survives it without a gap.
   */
  private readonly extras = new Map<string, { add: string; remove: string }>();

  addExtra(key: string, add: string, remove: string): void {
    this.run(add, `add ${key}`);
    this.extras.set(key, { add, remove });
  }

  /** Removes an extra; also when the kernel no longer has it (a rewrite failed, someone deleted it). */
  removeExtra(key: string): void {
    const x = this.extras.get(key);
    if (!x) return;
    this.extras.delete(key);
    try {
      this.nft.run(x.remove);
    } catch { /* gone already: what matters is that it is not replayed */ }
  }

  private extraText(): string {
    return [...this.extras.values()].map((x) => x.add).join('');
  }

  /** keep the host FORWARD chain open to loom's bridges (the daemon turns it on; unit tests leave it off) */
  coexist = false;
  /** where best-effort problems go (the daemon logs them) */
  onWarning?: (message: string) => void;

  /**
   * The general form: every part of `change` in one transaction, removals before additions. Removing
   * something absent and adding something already present are no-ops, so retries are safe; adding a port
   * whose host address/port is taken by a different mapping is a conflict (409).
   */
  apply(change: FwChange): void {
    const next: Working = { networks: new Map(this.cur.networks), ports: new Map(this.cur.ports), links: new Map(this.cur.links) };
    let networksChanged = false;
    const delPorts: FwPort[] = [], addPorts: FwPort[] = [], delLinks: FwLink[] = [], addLinks: FwLink[] = [];

    checked(() => {
      for (const r of change.removeNetworks ?? []) {
        if (next.networks.delete(typeof r === 'string' ? r : r.id)) networksChanged = true;
      }
      for (const n of change.addNetworks ?? []) {
        const norm = normNetwork(n);
        const old = next.networks.get(norm.id);
        if (old && sameNetwork(old, norm)) continue;
        next.networks.delete(norm.id); // an update: the same id with new settings
        this.putNetwork(next, norm);
        networksChanged = true;
      }
      for (const p of change.removePorts ?? []) {
        for (const e of normPorts(p)) {
          // Only the exact mapping is removed: a stale request must not take another container's port.
          const old = next.ports.get(portKey(e));
          if (old && samePort(old, e)) {
            next.ports.delete(portKey(e));
            delPorts.push(old);
          }
        }
      }
      for (const p of change.addPorts ?? []) {
        for (const e of normPorts(p)) {
          if (this.putPort(next, e)) addPorts.push(e);
        }
      }
      for (const l of change.removeLinks ?? []) {
        const e = normLink(l);
        if (next.links.delete(linkKey(e))) delLinks.push(e);
      }
      for (const l of change.addLinks ?? []) {
        const e = normLink(l);
        if (this.putLink(next, e)) addLinks.push(e);
      }
    });

    // Removed and added back in the same change: nothing to do in the kernel for that element.
    const cancel = <T>(dels: T[], adds: T[], key: (x: T) => string) => {
      const added = new Set(adds.map(key));
      const back = new Set(dels.filter((d) => added.has(key(d))).map(key));
      return [dels.filter((d) => !back.has(key(d))), adds.filter((a) => !back.has(key(a)))] as const;
    };
    const [dp, ap] = cancel(delPorts, addPorts, (p) => `${portKey(p)}>${p.containerIp}:${p.containerPort}-${p.containerPortEnd}`);
    const [dl, al] = cancel(delLinks, addLinks, linkKey);

    if (!networksChanged && this.elements) {
      this.writeElements(dp, dl, ap, al, summarize(change));
    } else {
      const text = networksChanged
        ? renderRuleset(toState(next)) + this.extraText()
        : renderDeletePorts(dp) + renderDeleteLinks(dl) + renderAddPorts(ap) + renderAddLinks(al);
      if (text) this.run(text, summarize(change));
    }
    this.cur = next;
    if (networksChanged) this.syncHostForward();
  }

  addNetwork(n: FwNetwork): void {
    this.apply({ addNetworks: [n] });
  }

  removeNetwork(id: string): void {
    this.apply({ removeNetworks: [id] });
  }

  addPorts(ports: FwPort[]): void {
    this.apply({ addPorts: ports });
  }

  removePorts(ports: FwPort[]): void {
    this.apply({ removePorts: ports });
  }

  addLinks(links: FwLink[]): void {
    this.apply({ addLinks: links });
  }

  removeLinks(links: FwLink[]): void {
    this.apply({ removeLinks: links });
  }

  /** What loom believes is in the kernel (canonical form: port ranges that shift ports appear per port). */
  state(): FwState {
    return structuredClone(toState(this.cur));
  }

  /** Deletes loom's tables and forgets the state (daemon shutdown with cleanup, tests). */
  removeAll(): void {
    this.run(renderDeleteAll(), 'remove loom tables');
    this.cur = { networks: new Map(), ports: new Map(), links: new Map() };
  }

  close(): void {
    this.nft.close();
    this.elements?.close();
  }

  private run(text: string, what: string): void {
    try {
      this.nft.run(text);
    } catch (e) {
      // nft's message quotes the failing input line, i.e. the element or rule that was refused.
      throw systemError(`firewall: ${what} failed: ${messageOf(e)}`);
    }
  }

  /** The same elements, in the same order, as the text path (removals first), as one netlink batch. */
  private writeElements(dp: readonly FwPort[], dl: readonly FwLink[], ap: readonly FwPort[], al: readonly FwLink[], what: string): void {
    const ops: ElemOp[] = [
      ...sortPorts(dp).map((p) => portOp('delete', p, portElementText(p, false))),
      ...sortLinks(dl).map((l) => linkOp('delete', l, linkElement(l))),
      ...sortPorts(ap).map((p) => portOp('add', p, portElementText(p, true))),
      ...sortLinks(al).map((l) => linkOp('add', l, linkElement(l))),
    ];
    if (!ops.length) return;
    try {
      this.elements!.apply(ops);
    } catch (e) {
      throw systemError(`firewall: ${what} failed: ${messageOf(e)}`);
    }
  }

  private putNetwork(w: Working, n: FwNetwork): void {
    for (const o of w.networks.values()) {
      if (o.bridge === n.bridge && o.id !== n.id) throw conflict(`firewall: bridge ${n.bridge} of network ${n.id} already belongs to network ${o.id}`);
    }
    w.networks.set(n.id, n);
  }

  /** Adds a port element; false if the very same mapping is already there. */
  private putPort(w: Working, p: FwPort): boolean {
    const old = w.ports.get(portKey(p));
    if (old && samePort(old, p)) return false;
    for (const o of w.ports.values()) {
      if (portsOverlap(o, p)) throw conflict(`firewall: cannot publish ${describePort(p)}: overlaps ${describePort(o)}`);
    }
    w.ports.set(portKey(p), p);
    return true;
  }

  private putLink(w: Working, l: FwLink): boolean {
    if (w.links.has(linkKey(l))) return false;
    w.links.set(linkKey(l), l);
    return true;
  }
}

const sortPorts = (ps: readonly FwPort[]) => [...ps].sort((a, b) => a.family - b.family || a.proto.localeCompare(b.proto) || a.hostIp.localeCompare(b.hostIp) || a.hostPort - b.hostPort);
const sortLinks = (ls: readonly FwLink[]) => [...ls].sort((a, b) => linkKey(a).localeCompare(linkKey(b)));

function toState(w: Working): FwState {
  return { networks: [...w.networks.values()], ports: [...w.ports.values()], links: [...w.links.values()] };
}

/** "add ports: 2, remove links: 1 (tcp 0.0.0.0:8080 -> ...)", for error messages; nft's error quotes the element. */
function summarize(c: FwChange): string {
  const counts: [string, unknown[] | undefined][] = [
    ['add networks', c.addNetworks], ['remove networks', c.removeNetworks], ['add ports', c.addPorts],
    ['remove ports', c.removePorts], ['add links', c.addLinks], ['remove links', c.removeLinks],
  ];
  const parts = counts.filter(([, xs]) => xs?.length).map(([k, xs]) => `${k}: ${xs!.length}`);
  const ports = [...(c.addPorts ?? []), ...(c.removePorts ?? [])];
  const links = [...(c.addLinks ?? []), ...(c.removeLinks ?? [])];
  let detail = '';
  try {
    if (ports.length === 1 && !links.length) detail = ` (${describePort(normPorts(ports[0]!)[0]!)})`;
    if (links.length === 1 && !ports.length) detail = ` (${describeLink(normLink(links[0]!))})`;
  } catch { /* already validated; a description is only a courtesy */ }
  return `${parts.join(', ') || 'change'}${detail}`;
}

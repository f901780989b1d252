// Firewall self-heal: loom listens to nf_tables change notifications (NETLINK_NETFILTER, multicast group
// NFNLGRP_NFTABLES) in the namespace where it keeps its tables, and restores its desired state when
// someone else changes them: `nft flush ruleset`, `nft delete table ip loom`, a firewall manager reloading.
//
// Telling our own changes from others': every nf_tables transaction ends with an NFT_MSG_NEWGEN
// notification carrying the pid (NFTA_GEN_PROC_PID, the committing thread's id) and name of the process
// that committed it. libnftables runs inside the daemon, so a transaction whose NEWGEN names one of the
// daemon's threads is loom's own; any other one that touched a table named `loom` (in any family) is
// foreign and schedules a heal. Rules in tables loom does not own are never looked at: loom only puts
// its own two tables back, whole, in one transaction (Firewall.reconcile).
//
// The socket only receives, so the `netlink` package's RawNetlinkSocket is enough here (its sendmsg on
// the main thread, the reason rtnl.ts drives its own fd, does not matter for a listener).
import fs from 'node:fs';
import { RawNetlinkSocket } from 'netlink';
import { TABLE } from './ruleset.ts';

const NETLINK_NETFILTER = 12;
const NFNLGRP_NFTABLES = 7;
const NFNL_SUBSYS_NFTABLES = 10;
const NLMSG_HDRLEN = 16, NFGENMSG_LEN = 4;
const NFT_MSG_NEWGEN = 15;
const NFTA_GEN_PROC_PID = 2, NFTA_GEN_PROC_NAME = 3;
/** For tables, chains, rules, sets, set element lists, objects and flowtables alike, attribute 1 is the table's name. */
const NFTA_TABLE_ATTR = 1;

/** What one nf_tables notification says, as far as the watcher cares. */
export interface NftNotice { msg: number; table?: string; pid?: number; procName?: string }

/** Parses the nf_tables notifications in one netlink datagram (pure; exported for tests). */
export function parseNotices(buf: Buffer): NftNotice[] {
  const out: NftNotice[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    const type = buf.readUInt16LE(off + 4);
    if (type >> 8 === NFNL_SUBSYS_NFTABLES) {
      const n: NftNotice = { msg: type & 0xff };
      let a = off + NLMSG_HDRLEN + NFGENMSG_LEN;
      while (a + 4 <= off + len) {
        const alen = buf.readUInt16LE(a);
        const atype = buf.readUInt16LE(a + 2) & 0x3fff;
        if (alen < 4 || a + alen > off + len) break;
        const val = buf.subarray(a + 4, a + alen);
        if (n.msg === NFT_MSG_NEWGEN) {
          if (atype === NFTA_GEN_PROC_PID && val.length >= 4) n.pid = val.readUInt32BE(0);
          if (atype === NFTA_GEN_PROC_NAME) n.procName = val.toString('latin1').replace(/\0.*$/s, '');
        } else if (atype === NFTA_TABLE_ATTR) {
          n.table = val.toString('latin1').replace(/\0.*$/s, '');
        }
        a += (alen + 3) & ~3;
      }
      out.push(n);
    }
    off += (len + 3) & ~3;
  }
  return out;
}

export interface WatchLog {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  error(o: object, msg: string): void;
}

export interface FirewallWatchOptions {
  /** puts loom's tables back; throws on failure */
  heal: () => void;
  log: WatchLog;
  /** told after each heal (for the events stream) */
  onHeal?: (what: { by: string; attempt: number }) => void;
  /** wait after a foreign change before healing: a burst (a firewall reload) becomes one heal */
  debounceMs?: number;
}

/**
 * Watches nf_tables in the namespace it is created in. Heals within ~debounceMs of a foreign change;
 * when another tool keeps deleting loom's tables it backs off (doubling up to a minute) and says so,
 * rather than fighting it in a loop.
 */
export class FirewallWatch {
  private sock: RawNetlinkSocket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly opts: Required<Omit<FirewallWatchOptions, 'onHeal'>> & Pick<FirewallWatchOptions, 'onHeal'>;
  /** what the transaction being read (until its NEWGEN) touched: loom's tables, the iptables filter table */
  private pendingTouch = false;
  private pendingFilter = false;
  /** whether the heal to come follows a change of loom's own tables (else only the host's filter table) */
  private loomTouched = false;
  private lastBy = '';
  private recent: number[] = [];
  private backoffMs = 0;
  heals = 0;

  constructor(opts: FirewallWatchOptions) {
    this.opts = { debounceMs: 100, ...opts };
  }

  start(): void {
    const sock = new RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: 4 << 20, sendBufferSize: 0 } as never);
    sock.addMembership(NFNLGRP_NFTABLES);
    sock.on('message', (msg: Buffer) => this.onMessage(msg));
    sock.on('error', (e: Error) => {
      // ENOBUFS: notifications were lost (a huge foreign reload); check by healing, which is idempotent
      this.opts.log.warn({ err: e.message }, 'firewall watch: socket error; restoring loom tables to be safe');
      this.schedule('unknown (notifications lost)');
    });
    sock.unref();
    this.sock = sock;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.sock?.close();
    this.sock = null;
  }

  private onMessage(msg: Buffer): void {
    for (const n of parseNotices(msg)) {
      if (n.msg !== NFT_MSG_NEWGEN) {
        if (n.table === TABLE) this.pendingTouch = true;
        // iptables' filter table: a reload there may have dropped loom's FORWARD jump (Firewall.syncHostForward)
        if (n.table === 'filter') this.pendingFilter = true;
        continue;
      }
      const touched = this.pendingTouch, filter = this.pendingFilter;
      this.pendingTouch = this.pendingFilter = false;
      if ((!touched && !filter) || isOwnThread(n.pid)) continue;
      if (touched) this.loomTouched = true;
      this.schedule(`${n.procName || 'unknown'} (pid ${n.pid ?? '?'})`);
    }
  }

  private schedule(by: string): void {
    this.lastBy = by;
    if (this.timer) return;
    const now = Date.now();
    this.recent = this.recent.filter((t) => now - t < 30_000);
    // more than 5 heals in 30 s: someone keeps removing loom's rules; wait longer each time
    // (only changes of loom's own tables count: the host's filter table is someone else's to edit freely)
    if (this.recent.length >= 5 && this.loomTouched) this.backoffMs = Math.min(60_000, Math.max(1000, this.backoffMs * 2));
    else this.backoffMs = 0;
    if (this.backoffMs) this.opts.log.warn({ by, retryInMs: this.backoffMs }, 'firewall watch: loom tables keep being changed by another program; backing off');
    this.timer = setTimeout(() => this.heal(), this.opts.debounceMs + this.backoffMs);
    this.timer.unref();
  }

  private heal(): void {
    this.timer = null;
    const by = this.lastBy;
    const loom = this.loomTouched;
    this.loomTouched = false;
    if (loom) this.recent.push(Date.now());
    try {
      this.opts.heal();
      if (!loom) return; // only the host's filter table changed: loom's jump checked again, nothing to report
      this.heals++;
      this.opts.log.info({ by, heals: this.heals }, `firewall watch: loom's nftables tables were changed by ${by}; restored`);
      this.opts.onHeal?.({ by, attempt: this.heals });
    } catch (e) {
      this.opts.log.error({ by, err: (e as Error).message }, 'firewall watch: restoring loom tables failed');
      this.loomTouched ||= loom;
      this.schedule(by);
    }
  }
}

/** NFTA_GEN_PROC_PID is the committing thread's id: loom's own if it is one of this process's threads. */
function isOwnThread(tid: number | undefined): boolean {
  if (tid === undefined) return false;
  if (tid === process.pid) return true;
  return fs.existsSync(`/proc/self/task/${tid}`);
}

// Open vSwitch networks (`-d openvswitch`, reference 001's OVS design): each network is an OVS bridge whose
// internal port is the gateway device (addresses, NAT, published ports and isolation by loom's nftables as
// on a Linux bridge), each endpoint a veth whose host end is a port of that bridge. Everything is the
// bridge driver's but the switch: the device comes from OVSDB (src/kernel/ovsdb.ts) and ports are added
// and removed by transactions, waited for until ovs-vswitchd has applied them (next_cfg / cur_cfg, as
// ovs-vsctl waits).
//
// Beyond the bridge driver: enable_icc=false as OpenFlow rules (flows()), a supervisor restarting the
// managed OVS daemons (OvsSwitch.supervise), and with a cluster store global networks joined across hosts
// by a VXLAN port on each host's bridge (ensureTunnel, peers from src/core/cluster.ts).
//
// Where the switch comes from (daemon flag --ovs):
//   --ovs=managed         loom runs its own ovsdb-server and ovs-vswitchd in its namespace, state under
//                         <exec-root>/ovs, kept across daemon restarts (they run detached, reused when alive)
//   --ovs=unix:PATH       an ovsdb-server the host runs (its ovs-vswitchd must see loom's namespace)
// Facts measured here (OVS 3.1): this kernel has no openvswitch datapath, so bridges use the userspace one
// (datapath_type=netdev) unless /sys/module/openvswitch exists; with it TCP between containers fails
// silently (segments with partial checksums) unless other_config:userspace-tso-enable=true is set before
// ovs-vswitchd starts, which the managed mode does.
import { KeyedSerial } from '../util/keyed-serial.ts';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import type { EndpointRecord, NetworkRecord } from '../core/types.ts';
import { Ovsdb, ovsMap, ovsSet, namedUuid, type OvsdbOp } from '../kernel/ovsdb.ts';
import { BridgeDriver, OPT_BRIDGE_NAME, randomMac } from './bridge.ts';
import { OPT_UPLINK } from './uplink.ts';
import { VXLAN_PORT, vniOf, type Peer } from './overlay.ts';
import { vxlanData } from '../kernel/rtnl.ts';
import { invalidParameter, systemError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';

/** A network's OVS bridge: its record's (set by prepare, or a custom name), else the one derived from its id. */
export const ovsBridgeOf = (net: NetworkRecord) => net.bridge ?? `ovs-${net.id.slice(0, 11)}`;
/** a global network's vxlan device: ovx-<first 11 of the id> (15 characters, the kernel's limit) */
const tunnelName = (net: NetworkRecord) => `ovx-${net.id.slice(0, 11)}`;
/** outer IPv4 + UDP + VXLAN + inner Ethernet headers */
const VXLAN_ENCAP = 50;

/** set by the driver, shown by `network inspect`: the network's OVS bridge and its datapath type */
export const OPT_OVS_BRIDGE = 'loom.ovs.bridge';
export const OPT_OVS_DATAPATH = 'loom.ovs.datapath_type';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const OVS_HINT = 'install Open vSwitch (Debian: openvswitch-switch) and start the daemon with --ovs=managed (loom runs its own ovsdb-server and ovs-vswitchd) or --ovs=unix:/run/openvswitch/db.sock (the host\'s)';
const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';
const BIN = { server: '/usr/sbin/ovsdb-server', switchd: '/usr/sbin/ovs-vswitchd', tool: '/usr/bin/ovsdb-tool', ofctl: '/usr/bin/ovs-ofctl' };

/** A connection to OVSDB, with ovs-vswitchd applying what it is told. */
export class OvsSwitch {
  private conn: Ovsdb;
  readonly datapath: 'netdev' | 'system';
  /** where ovs-vswitchd keeps each bridge's OpenFlow socket (<bridge>.mgmt), for ovs-ofctl */
  readonly rundir: string;
  /** the managed daemons' directory; null with --ovs=unix:PATH (the host supervises its own OVS) */
  private readonly managed: string | null;
  private readonly log: Logger;
  private watch: NodeJS.Timeout | null = null;
  private restarting: Promise<void> | null = null;
  /** called after the supervisor started ovs-vswitchd again (its flows and devices need checking) */
  onRestart: (() => Promise<void>) | null = null;

  /** ovs-vswitchd's cur_cfg as the monitor last told, and the commits waiting for it */
  private curCfg = 0;
  private waiters: { cfg: number; resolve(): void }[] = [];

  private constructor(db: Ovsdb, rundir: string, managed: string | null, log: Logger) {
    this.conn = db;
    this.rundir = rundir;
    this.managed = managed;
    this.log = log;
    this.datapath = fs.existsSync('/sys/module/openvswitch') ? 'system' : 'netdev';
  }

  get db(): Ovsdb {
    return this.conn;
  }

  /** `spec`: 'managed' or 'unix:PATH'; `runDir`: the managed daemons' state. */
  static async open(spec: string, runDir: string, log: Logger): Promise<OvsSwitch> {
    if (spec.startsWith('unix:')) {
      const sw = new OvsSwitch(await Ovsdb.connect(spec.slice(5)), path.dirname(spec.slice(5)), null, log);
      await sw.watchCfg();
      return sw;
    }
    if (spec !== 'managed') throw invalidParameter(`--ovs must be managed or unix:PATH, not ${spec}`);
    const missing = [...Object.values(BIN), SCHEMA].filter((f) => !fs.existsSync(f));
    if (missing.length) throw systemError(`Open vSwitch is not installed (${missing.join(', ')} missing): ${OVS_HINT}`);
    fs.mkdirSync(runDir, { recursive: true });
    const sw = new OvsSwitch(await startServer(runDir, log), runDir, runDir, log);
    await sw.watchCfg();
    await sw.startSwitchd();
    sw.supervise();
    return sw;
  }

  /** The root row, with userspace TSO on before ovs-vswitchd reads its configuration; then ovs-vswitchd. */
  private async startSwitchd(): Promise<void> {
    const dir = this.managed!;
    const [rows] = await this.db.transact([{ op: 'select', table: 'Open_vSwitch', where: [], columns: ['_uuid'] }]);
    if (!rows.rows.length) {
      await this.db.transact([{ op: 'insert', table: 'Open_vSwitch', row: { other_config: ovsMap({ 'userspace-tso-enable': 'true' }) } }]);
    } else {
      await this.db.transact([{ op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['other_config', 'insert', ovsMap({ 'userspace-tso-enable': 'true' })]] }]);
    }
    const p = (n: string) => path.join(dir, n);
    if (!alive(p('ovs-vswitchd.pid'))) {
      startDetached(BIN.switchd, [`unix:${p('db.sock')}`, `--pidfile=${p('ovs-vswitchd.pid')}`, `--unixctl=${p('ovs-vswitchd.ctl')}`, `--log-file=${p('ovs-vswitchd.log')}`, '--no-chdir'], dir);
      this.log.info({ dir }, 'started ovs-vswitchd');
    }
    await this.commit([]); // returns once ovs-vswitchd has applied the configuration: it is up
  }

  /**
   * loom's supervisor of the managed daemons: they run detached (they outlive a daemon restart, and
   * containers keep their network meanwhile), so their deaths are seen by polling their pid files. A dead
   * ovsdb-server is started again on its database and reconnected; a dead ovs-vswitchd is started again
   * and reads its bridges and ports from OVSDB; then onRestart lets the driver restore what OVSDB does
   * not keep (OpenFlow rules, the gateway device's addresses when its tap went with the process).
   */
  private supervise(): void {
    const tick = () => {
      if (this.restarting) return;
      const dir = this.managed!;
      const serverDead = !alive(path.join(dir, 'ovsdb-server.pid')) || this.db.isClosed;
      const switchdDead = !alive(path.join(dir, 'ovs-vswitchd.pid'));
      if (!serverDead && !switchdDead) return;
      this.restarting = this.restart(serverDead, switchdDead)
        .catch((e) => this.log.error({ dir, err: String(e) }, 'restarting Open vSwitch failed; trying again'))
        .finally(() => { this.restarting = null; });
    };
    this.watch = setInterval(tick, SUPERVISE_MS);
    this.watch.unref();
  }

  private async restart(serverDead: boolean, switchdDead: boolean): Promise<void> {
    const dir = this.managed!;
    this.log.warn({ dir, ovsdbServer: serverDead ? 'dead' : 'alive', ovsVswitchd: switchdDead ? 'dead' : 'alive' }, 'Open vSwitch died: starting it again');
    if (serverDead) {
      this.conn.close();
      this.conn = await startServer(dir, this.log);
      await this.watchCfg();
    }
    if (switchdDead) {
      await this.startSwitchd();
      await this.onRestart?.();
    }
    this.log.info({ dir }, 'Open vSwitch is back');
  }

  /** Follows ovs-vswitchd's cur_cfg through an OVSDB monitor (as ovs-vsctl waits), not by polling. */
  private async watchCfg(): Promise<void> {
    const db = this.conn;
    const take = (u: Record<string, Record<string, { new?: Record<string, unknown> }>>) => {
      for (const row of Object.values(u.Open_vSwitch ?? {})) {
        const cfg = row.new?.cur_cfg;
        if (typeof cfg === 'number') this.curCfg = cfg;
      }
      this.waiters = this.waiters.filter((w) => (w.cfg <= this.curCfg ? (w.resolve(), false) : true));
    };
    db.onUpdate = take;
    take(await db.monitor({ Open_vSwitch: ['cur_cfg'] }));
  }

  /** A transaction, then waits until ovs-vswitchd has applied it. */
  async commit(ops: OvsdbOp[]): Promise<any[]> {
    const res = await this.db.transact([
      ...ops,
      { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 1]] },
      { op: 'select', table: 'Open_vSwitch', where: [], columns: ['next_cfg'] },
    ]);
    const next = res[res.length - 1].rows[0].next_cfg as number;
    if (this.curCfg >= next) return res;
    let timer: NodeJS.Timeout | undefined;
    const applied = await new Promise<boolean>((resolve) => {
      const w = { cfg: next, resolve: () => resolve(true) };
      this.waiters.push(w);
      timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(false);
      }, 10_000);
    });
    clearTimeout(timer);
    if (!applied) throw systemError('ovs-vswitchd did not apply the configuration within 10 s');
    return res;
  }

  /**
   * Replaces the OpenFlow rules of a bridge with loom's cookie by `flows` (ovs-ofctl over the bridge's
   * OpenFlow socket: writing OpenFlow's binary flow_mod encoding by hand is not worth it for the few
   * rules set when a network is made or ovs-vswitchd restarted, and no npm OpenFlow library is kept up).
   */
  async setFlows(bridge: string, flows: string[]): Promise<void> {
    const lines = [`delete cookie=${FLOW_COOKIE}/-1`, ...flows.map((f) => `add cookie=${FLOW_COOKIE},${f}`)];
    await run(BIN.ofctl, ['--bundle', 'add-flows', bridge, '-'], lines.join('\n') + '\n', { ...process.env, OVS_RUNDIR: this.rundir });
  }

  close(): void {
    if (this.watch) clearInterval(this.watch);
    this.conn.close();
  }
}

const SUPERVISE_MS = 500;
/** loom's OpenFlow rules carry this cookie: replaced as a whole, never touching others' */
const FLOW_COOKIE = '0x6c6f6f6d';

/** Connects to the managed ovsdb-server, starting it (and its database) first when it does not answer. */
async function startServer(dir: string, log: Logger): Promise<Ovsdb> {
  const p = (n: string) => path.join(dir, n);
  const sock = p('db.sock');
  let db = await Ovsdb.connect(sock).catch(() => null);
  if (db) return db;
  if (!fs.existsSync(p('conf.db'))) execFileSync(BIN.tool, ['create', p('conf.db'), SCHEMA]);
  fs.rmSync(sock, { force: true });
  startDetached(BIN.server, [p('conf.db'), `--remote=punix:${sock}`, `--pidfile=${p('ovsdb-server.pid')}`, `--unixctl=${p('ovsdb-server.ctl')}`, `--log-file=${p('ovsdb-server.log')}`, '--no-chdir'], dir);
  for (let i = 0; i < 500 && !db; i++) db = await Ovsdb.connect(sock).catch(async () => (await sleep(10), null));
  if (!db) throw systemError(`ovsdb-server did not come up (see ${p('ovsdb-server.log')})`);
  log.info({ dir }, 'started ovsdb-server');
  return db;
}

/** OVS_RUNDIR: the bridges' OpenFlow sockets go in loom's directory, not the host's /run/openvswitch */
function startDetached(bin: string, args: string[], rundir: string): void {
  const c = spawn(bin, args, { detached: true, stdio: 'ignore', env: { ...process.env, OVS_RUNDIR: rundir } });
  c.unref();
}

function run(bin: string, args: string[], input: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(bin, args, { stdio: ['pipe', 'ignore', 'pipe'], env });
    let err = '';
    c.stderr!.on('data', (d: Buffer) => { err += d; });
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(systemError(`${path.basename(bin)} ${args.join(' ')}: ${err.trim() || `exit ${code}`}`))));
    c.stdin!.end(input);
  });
}

/** A process that exists and is not a zombie (one left by a previous daemon run is nobody's child to reap). */
function alive(pidfile: string): boolean {
  try {
    const pid = Number(fs.readFileSync(pidfile, 'utf8'));
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export class OvsDriver extends BridgeDriver {
  override readonly type = 'openvswitch';
  protected override deviceKind = 'tun';
  private readonly open: (() => Promise<OvsSwitch>) | null;
  private sw: Promise<OvsSwitch> | null = null;
  /** the networks whose kernel side this run made or adopted: restored when ovs-vswitchd restarts */
  private readonly nets = new Map<string, NetworkRecord>();
  private readonly queues = new KeyedSerial();

  /** the address other hosts reach this one at (--cluster-advertise): the local end of every tunnel */
  private readonly advertise: string | undefined;
  /** remote endpoints of global networks (from the cluster store), by network and address */
  private readonly peers = new Map<string, Map<string, Peer>>();

  /** `open` is null when the daemon has no --ovs: every create is refused, naming what to do. */
  constructor(log: Logger, defaults: { icc: boolean; ipMasq: boolean }, open: (() => Promise<OvsSwitch>) | null, advertise?: string) {
    super(log, defaults);
    this.open = open;
    this.advertise = advertise;
  }

  /**
   * A global network's record comes from the cluster store, written before this driver's prepare() ran
   * on the host that made it: its device name is derived from its id on every host alike.
   */
  private fill(net: NetworkRecord): NetworkRecord {
    if (!net.bridge) net.bridge = ovsBridgeOf(net);
    return net;
  }

  override mtu(net: NetworkRecord): number | undefined {
    // a global network's frames cross hosts in VXLAN: its endpoints' MTU leaves room for the encapsulation
    if (net.scope === 'global') return (super.mtu(net) ?? 1500) - VXLAN_ENCAP;
    return super.mtu(net);
  }

  override firewallView(net: NetworkRecord) {
    return super.firewallView(this.fill(net));
  }

  override join(net: NetworkRecord, ep: EndpointRecord, netnsPath: string, defaultRoute: boolean): Promise<void> {
    return super.join(this.fill(net), ep, netnsPath, defaultRoute);
  }

  private async ready(): Promise<OvsSwitch> {
    if (!this.open) throw invalidParameter(`the openvswitch driver is not enabled: ${OVS_HINT}`);
    this.sw ??= this.open().then((sw) => {
      // the bridge's own port: a tap with the userspace datapath, an openvswitch device with the kernel's
      this.deviceKind = sw.datapath === 'netdev' ? 'tun' : 'openvswitch';
      sw.onRestart = () => this.restored();
      return sw;
    }, (e) => {
      this.sw = null;
      throw e;
    });
    return this.sw;
  }

  /** ovs-vswitchd started again by the supervisor: each network's device, addresses and rules checked. */
  private async restored(): Promise<void> {
    for (const net of this.nets.values()) {
      await this.ensureNetwork(net).catch((e) => this.log.error({ network: net.name, err: String(e) }, 'cannot restore the network after ovs-vswitchd restarted'));
    }
  }

  override async prepare(net: NetworkRecord, others: NetworkRecord[]): Promise<void> {
    const sw = await this.ready();
    if (net.options[OPT_UPLINK]) throw invalidParameter(`${OPT_UPLINK} is an option of the bridge driver, not of openvswitch`);
    for (const k of Object.keys(net.options)) if (k.startsWith('loom.ovs.')) throw invalidParameter(`${k} is set by loom (it shows the network's OVS bridge), not an option`);
    if (net.scope === 'global') {
      // the record went to the cluster store already: nothing may be added to it here that other hosts need
      if (net.options[OPT_BRIDGE_NAME]) throw invalidParameter(`${OPT_BRIDGE_NAME} is not taken by a global openvswitch network: its bridge has one name on every host`);
      if (!this.advertise) throw systemError(`openvswitch network ${net.name}: this daemon has no --cluster-advertise address for its tunnel endpoint`);
      if (net.ipam.config.some((c) => c.Subnet.includes(':')) || net.enableIPv6) throw invalidParameter('IPv6 is not supported on global openvswitch networks by loom');
    }
    await super.prepare(net, others);
    if (!net.options[OPT_BRIDGE_NAME]) net.bridge = `ovs-${net.id.slice(0, 11)}`; // not br-: `ip link` tells them apart
    if (net.scope === 'global') return;
    // shown by `network inspect` (as Docker's overlay driver shows its VXLAN ids in Options)
    net.options[OPT_OVS_BRIDGE] = net.bridge!;
    net.options[OPT_OVS_DATAPATH] = sw.datapath;
  }


  override close(): void {
    super.close();
    this.sw?.then((sw) => sw.close(), () => {});
  }

  /**
   * One network's ensure/delete at a time: a global network's record reaches this host from the cluster
   * store's watch while its create is still making it here.
   */
  private serial<T>(netId: string, fn: () => Promise<T>): Promise<T> {
    return this.queues.run(netId, fn);
  }

  override ensureNetwork(net: NetworkRecord): Promise<void> {
    return this.serial(net.id, () => this.ensureNow(net));
  }

  private async ensureNow(net: NetworkRecord): Promise<void> {
    const sw = await this.ready();
    this.fill(net);
    await super.ensureNetwork(net);
    this.nets.set(net.id, net);
    if (net.scope === 'global') await this.ensureTunnel(sw, net);
    const flows = await this.flows(net);
    if (flows.length) await sw.setFlows(net.bridge!, flows);
  }

  override deleteNetwork(net: NetworkRecord): Promise<void> {
    return this.serial(net.id, () => this.deleteNow(net));
  }

  private async deleteNow(net: NetworkRecord): Promise<void> {
    this.fill(net);
    this.nets.delete(net.id);
    await super.deleteNetwork(net);
    if (net.scope === 'global') {
      await this.rtnl.deleteLink(tunnelName(net));
      this.peers.delete(net.id);
    }
  }

  override leave(net: NetworkRecord | undefined, ep: EndpointRecord, opts: { sandboxGoing?: boolean } = {}): Promise<void> {
    return super.leave(net && this.fill(net), ep, opts);
  }

  // ------------------------------------------------------------------ global networks (a cluster store)
  //
  // Hosts are joined by a VXLAN port on each network's OVS bridge: a kernel vxlan device (VNI from the
  // cluster store, local address --cluster-advertise, UDP 4789, no learning, proxy ARP), made a port of
  // the bridge. Not OVS's own tunnel port (type=vxlan, options:remote_ip=flow, key): with the userspace
  // datapath its packets are routed by ovs-vswitchd itself and must leave through an OVS bridge holding
  // the underlay address (the host's NIC moved into OVS), which loom will not do to a host; the kernel's
  // device sends them through the host's own routes, with either datapath. Remote endpoints come from the
  // cluster store as the overlay driver's do (src/core/cluster.ts calls addPeer/removePeer): an ARP entry
  // and a forwarding entry each on the vxlan device, so ARP is answered on this host and frames go
  // unicast to the right one; nothing floods between hosts. The gateway is each host's own (the same
  // address on every host's bridge, never seen across: ARP for it is answered locally), so egress and
  // published ports stay on the host of the container, as on a bridge network.

  /** The vxlan device and its port on the bridge, made or adopted; known peers programmed. */
  private async ensureTunnel(sw: OvsSwitch, net: NetworkRecord): Promise<void> {
    const name = tunnelName(net);
    const vni = vniOf(net);
    if (!vni) throw systemError(`openvswitch network ${net.name} has no vxlan id`);
    if (!this.advertise) throw systemError(`openvswitch network ${net.name}: this daemon has no --cluster-advertise address for its tunnel endpoint`);
    let link = await this.rtnl.getLink(name);
    if (!link) {
      try {
        await this.rtnl.createLink({ name, kind: 'vxlan', mtu: this.mtu(net), up: true, data: vxlanData({ vni, local: this.advertise, port: VXLAN_PORT, learning: false, proxy: true }) });
      } catch (e) {
        if ((e as { code?: string }).code === 'EEXIST') throw systemError(`openvswitch network ${net.name}: vxlan id ${vni} is in use by another device on this host`);
        throw e;
      }
      link = await this.rtnl.getLink(name);
      if (!link) throw systemError(`openvswitch network ${net.name}: ${name} vanished after creation`);
    }
    const [sel] = await sw.db.transact([{ op: 'select', table: 'Port', where: [['name', '==', name]], columns: ['_uuid'] }]);
    if (!sel.rows.length) {
      await sw.commit([
        { op: 'insert', table: 'Interface', row: { name }, 'uuid-name': 'iface' },
        { op: 'insert', table: 'Port', row: { name, interfaces: namedUuid('iface'), external_ids: ovsMap({ 'loom-tunnel': net.id }) }, 'uuid-name': 'port' },
        { op: 'mutate', table: 'Bridge', where: [['name', '==', net.bridge!]], mutations: [['ports', 'insert', ovsSet([namedUuid('port')])]] },
      ]);
    }
    for (const p of this.peers.get(net.id)?.values() ?? []) await this.program(link.index, p);
  }

  /** A remote endpoint appeared (or moved): programmed at once if this host has the network. */
  async addPeer(netId: string, p: Peer): Promise<void> {
    let m = this.peers.get(netId);
    if (!m) this.peers.set(netId, (m = new Map()));
    const old = m.get(p.ip);
    m.set(p.ip, p);
    const net = this.nets.get(netId);
    const link = net && await this.rtnl.getLink(tunnelName(net));
    if (!link) return;
    if (old && old.mac !== p.mac) await this.unprogram(link.index, old);
    await this.program(link.index, p);
  }

  async removePeer(netId: string, ip: string): Promise<void> {
    const old = this.peers.get(netId)?.get(ip);
    if (!old) return;
    this.peers.get(netId)!.delete(ip);
    const net = this.nets.get(netId);
    const link = net && await this.rtnl.getLink(tunnelName(net));
    if (link) await this.unprogram(link.index, old);
  }

  private async program(index: number, p: Peer): Promise<void> {
    await this.rtnl.addNeighbor({ index, ip: p.ip, mac: p.mac });
    await this.rtnl.addNeighbor({ index, mac: p.mac, vtep: p.vtep });
  }

  private async unprogram(index: number, p: Peer): Promise<void> {
    await this.rtnl.delNeighbor({ index, ip: p.ip, mac: p.mac });
    await this.rtnl.delNeighbor({ index, mac: p.mac, vtep: p.vtep });
  }

  /**
   * The OpenFlow rules of a network: none but OVS's own NORMAL (a learning switch) with icc on. With
   * enable_icc=false, frames between two containers' ports are switched inside ovs-vswitchd and never meet
   * the host's IP stack or nftables (the userspace datapath reads the ports with AF_PACKET, before any
   * netdev hook could drop them), so the switch itself refuses them: a container's frames go to the
   * gateway port only (unicast to its MAC through NORMAL, which so learns where containers are;
   * broadcast and multicast — ARP, IPv6 ND — to it alone), the gateway's frames anywhere, the rest
   * dropped. Routed through the gateway, container to container is nftables' icc rule, as on a bridge.
   */
  private async flows(net: NetworkRecord): Promise<string[]> {
    if (this.firewallView(net)!.icc) return [];
    const gw = await this.rtnl.getLink(net.bridge!);
    if (!gw?.mac) throw systemError(`the gateway port ${net.bridge} of network ${net.name} has no MAC`);
    return [
      'priority=100,in_port=LOCAL,actions=NORMAL',
      `priority=90,dl_dst=${gw.mac},actions=NORMAL`,
      'priority=80,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=LOCAL',
      'priority=70,actions=drop',
    ];
  }

  protected override async createDevice(net: NetworkRecord, name: string): Promise<void> {
    const sw = await this.ready();
    const [sel] = await sw.db.transact([{ op: 'select', table: 'Bridge', where: [['name', '==', name]], columns: ['_uuid'] }]);
    // a bridge whose device is not there (yet): ovs-vswitchd makes it again from its row, ports included
    // (removing the row would drop the ports of the running containers)
    if (sel.rows.length) await sw.commit([]);
    else {
      // hwaddr: a fixed MAC, as the bridge driver gives its bridges (the gateway's MAC never changes under ARP caches)
      await sw.commit([
        { op: 'insert', table: 'Interface', row: { name, type: 'internal' }, 'uuid-name': 'iface' },
        { op: 'insert', table: 'Port', row: { name, interfaces: namedUuid('iface') }, 'uuid-name': 'port' },
        { op: 'insert', table: 'Bridge', row: { name, ports: namedUuid('port'), datapath_type: sw.datapath, external_ids: ovsMap({ 'loom-network': net.id }), other_config: ovsMap({ hwaddr: randomMac() }) }, 'uuid-name': 'br' },
        { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['bridges', 'insert', ovsSet([namedUuid('br')])]] },
      ]);
    }
    for (let i = 0; i < 500; i++) {
      const link = await this.rtnl.getLink(name);
      if (link) {
        const mtu = this.mtu(net);
        await this.rtnl.setLink(link.index, { up: true, ...(mtu ? { mtu } : {}) });
        return;
      }
      await sleep(10);
    }
    throw systemError(`ovs-vswitchd made no device ${name} for bridge ${name}`);
  }

  protected override async deleteDevice(net: NetworkRecord): Promise<void> {
    const sw = await this.ready();
    const [sel] = await sw.db.transact([{ op: 'select', table: 'Bridge', where: [['name', '==', net.bridge!]], columns: ['_uuid'] }]);
    if (!sel.rows.length) return;
    // the bridge row, unreferenced, goes with its ports and interfaces (OVSDB's garbage collection)
    await sw.commit([{ op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['bridges', 'delete', ovsSet(sel.rows.map((r: any) => r._uuid))]] }]);
  }

  protected override async plugged(net: NetworkRecord, ep: EndpointRecord): Promise<void> {
    const sw = await this.ready();
    await sw.commit([
      { op: 'insert', table: 'Interface', row: { name: ep.hostVeth! }, 'uuid-name': 'iface' },
      { op: 'insert', table: 'Port', row: { name: ep.hostVeth!, interfaces: namedUuid('iface'), external_ids: ovsMap({ 'loom-endpoint': ep.id }) }, 'uuid-name': 'port' },
      { op: 'mutate', table: 'Bridge', where: [['name', '==', net.bridge!]], mutations: [['ports', 'insert', ovsSet([namedUuid('port')])]] },
    ]);
  }

  /**
   * Ports of loom's endpoints that no live endpoint owns (a crash between plugging a port and recording
   * the endpoint, or while removing it): their rows and host ends go. Returns their names.
   */
  async sweepPorts(liveVeths: Set<string>): Promise<string[]> {
    if (!this.open) return [];
    const sw = await this.ready();
    const [ports] = await sw.db.transact([{ op: 'select', table: 'Port', where: [], columns: ['_uuid', 'name', 'external_ids'] }]);
    const orphans = (ports.rows as { _uuid: unknown; name: string; external_ids: [string, [string, string][]] }[])
      .filter((p) => p.external_ids[1].some(([k]) => k === 'loom-endpoint') && !liveVeths.has(p.name));
    if (!orphans.length) return [];
    await sw.commit([{ op: 'mutate', table: 'Bridge', where: [], mutations: [['ports', 'delete', ovsSet(orphans.map((p) => p._uuid))]] }]);
    for (const p of orphans) await this.rtnl.deleteLink(p.name);
    return orphans.map((p) => p.name);
  }

  protected override async unplug(_net: NetworkRecord | undefined, ep: EndpointRecord): Promise<void> {
    const sw = await this.ready();
    const [sel] = await sw.db.transact([{ op: 'select', table: 'Port', where: [['name', '==', ep.hostVeth!]], columns: ['_uuid'] }]);
    if (!sel.rows.length) return;
    await sw.commit([{ op: 'mutate', table: 'Bridge', where: [], mutations: [['ports', 'delete', ovsSet(sel.rows.map((r: any) => r._uuid))]] }]);
  }
}


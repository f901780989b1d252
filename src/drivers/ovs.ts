// Open vSwitch networks (`-d openvswitch`, reference 001's OVS design): each network is an OVS bridge whose
// internal port is the gateway device (addresses, NAT, published ports and isolation by loom's nftables as
// on a Linux bridge), each endpoint a veth whose host end is a port of that bridge. Everything is the
// bridge driver's but the switch: the device comes from OVSDB (src/kernel/ovsdb.ts) and ports are added
// and removed by transactions, waited for until ovs-vswitchd has applied them (next_cfg / cur_cfg, as
// ovs-vsctl waits).
//
// Where the switch comes from (daemon flag --ovs):
//   --ovs=managed         loom runs its own ovsdb-server and ovs-vswitchd in its namespace, state under
//                         <exec-root>/ovs, kept across daemon restarts (they run detached, reused when alive)
//   --ovs=unix:PATH       an ovsdb-server the host runs (its ovs-vswitchd must see loom's namespace)
// Facts measured here (OVS 3.1): this kernel has no openvswitch datapath, so bridges use the userspace one
// (datapath_type=netdev) unless /sys/module/openvswitch exists; with it TCP between containers fails
// silently (segments with partial checksums) unless other_config:userspace-tso-enable=true is set before
// ovs-vswitchd starts, which the managed mode does.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import type { EndpointRecord, NetworkRecord } from '../core/types.ts';
import { Ovsdb, ovsMap, ovsSet, namedUuid, type OvsdbOp } from '../kernel/ovsdb.ts';
import { BridgeDriver, OPT_BRIDGE_NAME, OPT_ICC, randomMac } from './bridge.ts';
import { OPT_UPLINK } from './uplink.ts';
import { invalidParameter, systemError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const OVS_HINT = 'install Open vSwitch (Debian: openvswitch-switch) and start the daemon with --ovs=managed (loom runs its own ovsdb-server and ovs-vswitchd) or --ovs=unix:/run/openvswitch/db.sock (the host\'s)';
const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';
const BIN = { server: '/usr/sbin/ovsdb-server', switchd: '/usr/sbin/ovs-vswitchd', tool: '/usr/bin/ovsdb-tool' };

/** A connection to OVSDB, with ovs-vswitchd applying what it is told. */
export class OvsSwitch {
  readonly db: Ovsdb;
  readonly datapath: 'netdev' | 'system';

  private constructor(db: Ovsdb) {
    this.db = db;
    this.datapath = fs.existsSync('/sys/module/openvswitch') ? 'system' : 'netdev';
  }

  /** `spec`: 'managed' or 'unix:PATH'; `runDir`: the managed daemons' state. */
  static async open(spec: string, runDir: string, log: Logger): Promise<OvsSwitch> {
    if (spec.startsWith('unix:')) return new OvsSwitch(await Ovsdb.connect(spec.slice(5)));
    if (spec !== 'managed') throw invalidParameter(`--ovs must be managed or unix:PATH, not ${spec}`);
    const missing = [...Object.values(BIN), SCHEMA].filter((f) => !fs.existsSync(f));
    if (missing.length) throw systemError(`Open vSwitch is not installed (${missing.join(', ')} missing): ${OVS_HINT}`);
    fs.mkdirSync(runDir, { recursive: true });
    const sock = path.join(runDir, 'db.sock');
    const p = (n: string) => path.join(runDir, n);
    let db = await Ovsdb.connect(sock).catch(() => null);
    if (!db) {
      if (!fs.existsSync(p('conf.db'))) execFileSync(BIN.tool, ['create', p('conf.db'), SCHEMA]);
      fs.rmSync(sock, { force: true });
      startDetached(BIN.server, [p('conf.db'), `--remote=punix:${sock}`, `--pidfile=${p('ovsdb-server.pid')}`, `--unixctl=${p('ovsdb-server.ctl')}`, `--log-file=${p('ovsdb-server.log')}`, '--no-chdir']);
      for (let i = 0; i < 500 && !db; i++) db = await Ovsdb.connect(sock).catch(async () => (await sleep(10), null));
      if (!db) throw systemError(`ovsdb-server did not come up (see ${p('ovsdb-server.log')})`);
      log.info({ dir: runDir }, 'started ovsdb-server');
    }
    const sw = new OvsSwitch(db);
    // the root row, with userspace TSO on before ovs-vswitchd reads its configuration
    const [rows] = await db.transact([{ op: 'select', table: 'Open_vSwitch', where: [], columns: ['_uuid'] }]);
    if (!rows.rows.length) {
      await db.transact([{ op: 'insert', table: 'Open_vSwitch', row: { other_config: ovsMap({ 'userspace-tso-enable': 'true' }) } }]);
    } else {
      await db.transact([{ op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['other_config', 'insert', ovsMap({ 'userspace-tso-enable': 'true' })]] }]);
    }
    if (!alive(p('ovs-vswitchd.pid'))) {
      startDetached(BIN.switchd, [`unix:${sock}`, `--pidfile=${p('ovs-vswitchd.pid')}`, `--unixctl=${p('ovs-vswitchd.ctl')}`, `--log-file=${p('ovs-vswitchd.log')}`, '--no-chdir']);
      log.info({ dir: runDir }, 'started ovs-vswitchd');
    }
    await sw.commit([]); // returns once ovs-vswitchd has applied the configuration: it is up
    return sw;
  }

  /** A transaction, then waits until ovs-vswitchd has applied it. */
  async commit(ops: OvsdbOp[]): Promise<any[]> {
    const res = await this.db.transact([
      ...ops,
      { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 1]] },
      { op: 'select', table: 'Open_vSwitch', where: [], columns: ['next_cfg'] },
    ]);
    const next = res[res.length - 1].rows[0].next_cfg as number;
    for (let i = 0; i < 1000; i++) {
      const [cur] = await this.db.transact([{ op: 'select', table: 'Open_vSwitch', where: [], columns: ['cur_cfg'] }]);
      if (cur.rows[0].cur_cfg >= next) return res;
      await sleep(10);
    }
    throw systemError('ovs-vswitchd did not apply the configuration within 10 s');
  }
}

function startDetached(bin: string, args: string[]): void {
  const c = spawn(bin, args, { detached: true, stdio: 'ignore' });
  c.unref();
}

function alive(pidfile: string): boolean {
  try {
    const pid = Number(fs.readFileSync(pidfile, 'utf8'));
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class OvsDriver extends BridgeDriver {
  override readonly type = 'openvswitch';
  protected override deviceKind = 'tun';
  private readonly open: (() => Promise<OvsSwitch>) | null;
  private sw: Promise<OvsSwitch> | null = null;

  /** `open` is null when the daemon has no --ovs: every create is refused, naming what to do. */
  constructor(log: Logger, defaults: { icc: boolean; ipMasq: boolean }, open: (() => Promise<OvsSwitch>) | null) {
    super(log, defaults);
    this.open = open;
  }

  private async ready(): Promise<OvsSwitch> {
    if (!this.open) throw invalidParameter(`the openvswitch driver is not enabled: ${OVS_HINT}`);
    this.sw ??= this.open().then((sw) => {
      // the bridge's own port: a tap with the userspace datapath, an openvswitch device with the kernel's
      this.deviceKind = sw.datapath === 'netdev' ? 'tun' : 'openvswitch';
      return sw;
    }, (e) => {
      this.sw = null;
      throw e;
    });
    return this.sw;
  }

  override async prepare(net: NetworkRecord, others: NetworkRecord[]): Promise<void> {
    await this.ready();
    if (net.options[OPT_UPLINK]) throw invalidParameter(`${OPT_UPLINK} is an option of the bridge driver, not of openvswitch`);
    // icc=false is a rule between two ports of one switch, which never reach the kernel's hooks here
    if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(net.options[OPT_ICC] ?? '')) throw invalidParameter(`${OPT_ICC}=false is not supported by the openvswitch driver`);
    await super.prepare(net, others);
    if (!net.options[OPT_BRIDGE_NAME]) net.bridge = `ovs-${net.id.slice(0, 11)}`; // not br-: `ip link` tells them apart
  }

  override async ensureNetwork(net: NetworkRecord): Promise<void> {
    await this.ready();
    return super.ensureNetwork(net);
  }

  protected override async createDevice(net: NetworkRecord, name: string): Promise<void> {
    const sw = await this.ready();
    await this.deleteDevice(net); // a row left without its device (ovs-vswitchd restarted meanwhile)
    // hwaddr: a fixed MAC, as the bridge driver gives its bridges (the gateway's MAC never changes under ARP caches)
    await sw.commit([
      { op: 'insert', table: 'Interface', row: { name, type: 'internal' }, 'uuid-name': 'iface' },
      { op: 'insert', table: 'Port', row: { name, interfaces: namedUuid('iface') }, 'uuid-name': 'port' },
      { op: 'insert', table: 'Bridge', row: { name, ports: namedUuid('port'), datapath_type: sw.datapath, external_ids: ovsMap({ 'loom-network': net.id }), other_config: ovsMap({ hwaddr: randomMac() }) }, 'uuid-name': 'br' },
      { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['bridges', 'insert', ovsSet([namedUuid('br')])]] },
    ]);
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


// Containers: the controller that owns the order of steps (namespace → endpoints → etc files → runc) and
// their rollback. Every step that fails undoes the earlier ones; a crash between steps is repaired at the
// next startup (see restore()). Networking exists exactly while a container runs, as in Docker.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Store } from '../store/sqlite.ts';
import type { Networks } from './networks.ts';
import type { Images } from './images.ts';
import type { Events } from './events.ts';
import type { ContainerConfig, ContainerRecord, EndpointRecord, HostConfig, ContainerState } from './types.ts';
import { Runc, findInit, type ExitStatus } from '../runtime/runc.ts';
import { resolveUserIn } from '../runtime/spec.ts';
import { failpoint } from '../util/failpoint.ts';
import { reconcile, type Difference } from './reconcile.ts';
import { Rtnl } from '../kernel/rtnl.ts';
import { bindNetns, createNetns, deleteNetns, moveNetns, netnsExists } from '../kernel/netns.ts';
import { processTerminal, firstChild, setWindowSize } from '../kernel/tty.ts';
import { configureInterface } from '../kernel/rtnl.ts';
import { parseResolvConf, renderHosts, renderResolvConf, type HostsEntry } from './etcfiles.ts';
import { netnsFileName, newId, nowIso, randomName, shortId, validateContainerName, ZERO_TIME } from './names.ts';
import { conflict, invalidParameter, LoomError, messageOf, notFound, notModified, systemError } from '../util/errors.ts';
import type { Logger } from '../util/log.ts';
import type { Firewall } from '../firewall/firewall.ts';
import type { FwLink, FwPort } from '../firewall/model.ts';
import { PortHolder, type HeldPort } from './ports.ts';
import { firewallPorts, linkEnv, linkRules, parseLinks, portRequests, validateExposedPorts, validatePortBindings, type Mapping } from './publish.ts';
import { OPT_HOST_BINDING } from '../drivers/bridge.ts';
import { DnsNames } from './dnsnames.ts';
import type { EmbeddedDns } from '../dns/resolver.ts';
import { Mounter, imageVolumes } from '../volumes/mounter.ts';
import type { Volumes } from '../volumes/volumes.ts';
import { refuseUnsupported } from './unsupported.ts';

export interface ContainerOptions {
  dataRoot: string;
  execRoot: string;
  netnsDir: string;
  netnsPrefix: string;
  resolvConf: string;
  hostsFile: string;
  /** cgroup parent of containers (dockerd's --cgroup-parent) */
  cgroupParent?: string;
}

export interface CreateBody extends Partial<ContainerConfig> {
  HostConfig?: Partial<HostConfig>;
  NetworkingConfig?: { EndpointsConfig?: Record<string, EndpointSettingsIn | null> | null } | null;
  MacAddress?: string;
}

interface EndpointSettingsIn {
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string } | null;
  Aliases?: string[] | null;
  MacAddress?: string;
  Links?: string[] | null;
}

type WaitCondition = 'not-running' | 'next-exit' | 'removed';
interface Waiter {
  cond: WaitCondition;
  resolve: (r: { StatusCode: number; Error: { Message: string } | null }) => void;
}

export interface ExecRecord {
  ID: string;
  containerId: string;
  Cmd: string[];
  Env: string[];
  WorkingDir: string;
  User: string;
  Tty: boolean;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  Privileged: boolean;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
}

const DEFAULT_ENV_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function emptyState(): ContainerState {
  return { Status: 'created', Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 0, ExitCode: 0, Error: '', StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME };
}

export class Containers {
  readonly runc: Runc;
  private readonly store: Store;
  private readonly nets: Networks;
  private readonly images: Images;
  private readonly events: Events;
  private readonly log: Logger;
  private readonly opts: ContainerOptions;
  private readonly locks = new Map<string, Promise<unknown>>();
  /** per running container: settles once its exit has been fully handled */
  private readonly exited = new Map<string, Promise<void>>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  readonly execs = new Map<string, ExecRecord>();
  /** listeners for "this container's process ended" (attach/log followers) */
  private readonly exitListeners = new Map<string, Set<() => void>>();
  private readonly fw: Firewall;
  /** names the embedded DNS answers, and the server itself (attached per container namespace) */
  readonly dnsNames = new DnsNames();
  dns?: EmbeddedDns;
  /** endpoints that belong to no container (CNI attachments, src/cni/attachments.ts): restore keeps their addresses and veths */
  externalEndpoints: () => EndpointRecord[] = () => [];
  readonly ports = new PortHolder();
  /** what a running container holds outside its namespace: host port sockets, firewall elements */
  private readonly published = new Map<string, { held: HeldPort[]; fwPorts: FwPort[]; fwLinks: FwLink[] }>();
  /** volumes and mounts (set by the daemon; containers without mounts need none) */
  mounter?: Mounter;

  constructor(store: Store, nets: Networks, images: Images, events: Events, fw: Firewall, log: Logger, opts: ContainerOptions) {
    this.store = store;
    this.fw = fw;
    this.nets = nets;
    this.images = images;
    this.events = events;
    this.log = log;
    this.opts = opts;
    this.runc = new Runc({ root: path.join(opts.execRoot, 'runc'), log, cgroupParent: opts.cgroupParent });
    fs.mkdirSync(path.join(opts.dataRoot, 'containers'), { recursive: true });
    store.onRollback(() => { this.cache = null; });
  }

  // ------------------------------------------------------------------ lookup

  /**
   * Every record, parsed once and kept in memory (write-through: save() writes SQLite first). Reading the
   * table on each lookup made every operation O(containers): at 1,000 containers JSON parsing was 64% of
   * an attach. Insertion order is the table's rowid order. Callers get copies; internal scans use all().
   */
  private cache: Map<string, ContainerRecord> | null = null;
  private readonly byName = new Map<string, string>();

  private records(): Map<string, ContainerRecord> {
    if (!this.cache) {
      this.cache = new Map();
      this.byName.clear();
      for (const c of this.store.all<ContainerRecord>('containers')) {
        this.cache.set(c.id, c);
        this.byName.set(c.name, c.id);
      }
    }
    return this.cache;
  }

  /** The cached records themselves: read them, never change them (changes go through reload + save). */
  private all(): IterableIterator<ContainerRecord> {
    return this.records().values();
  }

  list(): ContainerRecord[] {
    return [...this.all()].map((c) => structuredClone(c));
  }

  /** Docker's lookup order: full id, exact name, unique id prefix. */
  find(ref: string): ContainerRecord | undefined {
    const recs = this.records();
    const name = ref.startsWith('/') ? ref.slice(1) : ref;
    const exact = recs.get(ref) ?? recs.get(this.byName.get(name) ?? '');
    if (exact) return structuredClone(exact);
    if (!/^[0-9a-f]+$/.test(ref)) return undefined;
    let found: ContainerRecord | undefined;
    for (const [id, c] of recs) {
      if (!id.startsWith(ref)) continue;
      if (found) throw invalidParameter(`multiple IDs found with provided prefix: ${ref}`);
      found = c;
    }
    return found && structuredClone(found);
  }

  get(ref: string): ContainerRecord {
    const c = this.find(ref);
    if (!c) throw notFound(`No such container: ${ref}`);
    return c;
  }

  private save(c: ContainerRecord): void {
    const recs = this.records();
    const json = this.store.put('containers', c);
    const old = recs.get(c.id);
    if (old && old.name !== c.name) this.byName.delete(old.name);
    // the cached copy is the stored text parsed back (as records are read at start): cheaper than a
    // structuredClone of the record on top of the stringify the store does anyway
    recs.set(c.id, JSON.parse(json) as ContainerRecord);
    this.byName.set(c.name, c.id);
  }

  private forget(id: string): void {
    const recs = this.records();
    this.store.delete('containers', id);
    const old = recs.get(id);
    if (old) this.byName.delete(old.name);
    recs.delete(id);
  }

  private reload(id: string): ContainerRecord | undefined {
    const c = this.records().get(id);
    return c && structuredClone(c);
  }

  /** The record again once an operation holds the lock: the container may have been removed while it waited. */
  private reloadOr404(id: string): ContainerRecord {
    const c = this.reload(id);
    if (!c) throw notFound(`No such container: ${id}`);
    return c;
  }

  /** Serializes lifecycle operations on one container. */
  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.catch(() => {}).then(fn);
    this.locks.set(id, run);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === run) this.locks.delete(id);
    }
  }

  // ------------------------------------------------------------------ create

  /** Volumes and mounts: the local volumes, and which containers use a volume (for rm and ls -f dangling). */
  useVolumes(volumes: Volumes): void {
    this.mounter = new Mounter(volumes, this.log);
    this.mounter.onVolume = (action, name) => this.events.publish('volume', action, name, { driver: 'local' });
    volumes.usedBy = (name) => [...this.all()].filter((c) => c.mounts?.some((m) => m.Type === 'volume' && m.Name === name)).map((c) => c.id);
  }

  create(body: CreateBody, nameIn?: string): ContainerRecord {
    if (!body.Image) throw invalidParameter('config.Image is required');
    refuseUnsupported(body as Record<string, unknown>);
    const img = this.images.get(body.Image);
    const hc = body.HostConfig ?? {};
    const id = newId();
    const name = nameIn ? validateContainerName(nameIn) : randomName((n) => !!this.find(n));
    const clash = this.records().get(this.byName.get(name) ?? '');
    if (clash) {
      throw conflict(`Conflict. The container name "/${name}" is already in use by container "${clash.id}". You have to remove (or rename) that container to be able to reuse that name.`);
    }

    // Network mode and the networks to join.
    let mode = hc.NetworkMode || 'default';
    if (mode === 'default') mode = 'bridge';
    const requests: ContainerRecord['networkRequests'] = {};
    const endpointsIn = body.NetworkingConfig?.EndpointsConfig ?? {};
    if (mode.startsWith('container:')) {
      const target = mode.slice('container:'.length);
      if (!target) throw invalidParameter(`invalid network mode: ${mode}`);
      // A container that does not exist (yet) fails the start, not the create, as in Docker.
      const other = this.find(target);
      if (other) mode = `container:${other.id}`;
      if (body.Hostname) throw invalidParameter('conflicting options: hostname and the network mode');
    } else if (mode === 'host' || mode === 'none') {
      // no endpoints
    } else if (!this.nets.find(mode)) {
      // As moby: a network that does not exist at create may exist by the start, which fails if it still
      // does not ("network x not found", 404). A 404 here would also send the docker CLI off to pull the image.
      const given = hc.NetworkMode || 'default';
      requests[mode] = endpointRequest(endpointsIn[given] ?? endpointsIn[mode] ?? {}, body.MacAddress);
    } else {
      const net = this.nets.get(mode);
      if (net.driver === 'host' || net.driver === 'null') {
        mode = net.name;
      } else {
        // the docker CLI keys the endpoint of the default network by the mode it sent ("default")
        const given = hc.NetworkMode || 'default';
        const want = endpointsIn[given] ?? endpointsIn[mode] ?? endpointsIn[net.name] ?? endpointsIn[net.id] ?? {};
        requests[net.name] = endpointRequest(want, body.MacAddress);
        if (net.isDefault && requests[net.name]!.aliases.length) {
          throw invalidParameter('network-scoped alias is supported only for containers in user defined networks');
        }
        if (net.isDefault && (requests[net.name]!.ipv4 || requests[net.name]!.ipv6)) {
          throw invalidParameter('user specified IP address is supported on user defined networks only');
        }
        for (const [k, v] of Object.entries(endpointsIn)) {
          if (k === given || k === mode || k === net.name || k === net.id) continue;
          requests[this.nets.find(k)?.name ?? k] = endpointRequest(v ?? {}, undefined);
        }
        // --ip/--ip6 checked now, as Docker does at create (a taken address only fails at start)
        for (const [k, r] of Object.entries(requests)) {
          const n = this.nets.find(k);
          if (!n) continue;
          try {
            this.nets.validateEndpoint(n, r);
          } catch (e) {
            if (e instanceof LoomError) throw new LoomError(e.status, `invalid config for network ${k}: ${e.message}`);
            throw e;
          }
        }
      }
    }
    if (mode.startsWith('container:') && ((hc.PortBindings && Object.keys(hc.PortBindings).length) || hc.PublishAllPorts)) {
      throw invalidParameter('conflicting options: port publishing and the container type network mode');
    }
    if (mode.startsWith('container:') && hc.Links?.length) throw invalidParameter('conflicting options: container type network can\'t be used with links. This would result in undefined behavior');
    for (const l of parseLinks(hc.Links ?? null)) {
      // 400, not 404, as Docker: a 404 on create makes the docker CLI go and pull the image (moby#39823)
      if (!this.find(l.name)) throw invalidParameter(`could not get container for ${l.name}: No such container: ${l.name}`);
    }
    validatePortBindings(hc.PortBindings ?? undefined);
    validateExposedPorts(body.ExposedPorts);

    const entrypoint = body.Entrypoint ?? img.config.Entrypoint;
    const cmd = body.Cmd && body.Cmd.length ? body.Cmd : body.Entrypoint ? null : img.config.Cmd;
    const argv = [...(entrypoint ?? []), ...(cmd ?? [])];
    if (argv.length === 0) throw invalidParameter('No command specified');

    const env = mergeEnv(img.config.Env ?? [], body.Env ?? []);
    // the image's config under the request's, as Docker merges them (daemon/create.go)
    const exposed = { ...(img.config.ExposedPorts ?? {}), ...(body.ExposedPorts ?? {}) };
    const volumes = { ...(img.config.Volumes ?? {}), ...((body as { Volumes?: Record<string, object> }).Volumes ?? {}) };
    const stopSignal = body.StopSignal || img.config.StopSignal;
    const stateDir = path.join(this.opts.dataRoot, 'containers', id);
    const hostname = body.Hostname || (mode === 'host' ? os.hostname() : id.slice(0, 12));
    const config: ContainerConfig = {
      Hostname: hostname,
      Domainname: body.Domainname ?? '',
      User: body.User || img.config.User || '',
      AttachStdin: !!body.AttachStdin,
      AttachStdout: body.AttachStdout ?? true,
      AttachStderr: body.AttachStderr ?? true,
      ...(Object.keys(exposed).length ? { ExposedPorts: exposed } : {}),
      Tty: !!body.Tty,
      OpenStdin: !!body.OpenStdin,
      StdinOnce: !!body.StdinOnce,
      Env: env,
      Cmd: cmd,
      Image: body.Image,
      Volumes: Object.keys(volumes).length ? volumes : null,
      WorkingDir: body.WorkingDir || img.config.WorkingDir || '',
      Entrypoint: entrypoint,
      OnBuild: null,
      Labels: { ...(img.config.Labels ?? {}), ...(body.Labels ?? {}) },
      ...(stopSignal ? { StopSignal: stopSignal } : {}),
      ...(body.StopTimeout !== undefined && body.StopTimeout !== null ? { StopTimeout: body.StopTimeout } : {}),
    };
    const restart = hc.RestartPolicy ?? { Name: 'no', MaximumRetryCount: 0 };
    validateRestartPolicy(restart);
    if (hc.AutoRemove && restart.Name && restart.Name !== 'no') {
      throw invalidParameter('can\'t create \'AutoRemove\' container with restart policy');
    }
    const hostConfig: HostConfig = {
      ...hc,
      NetworkMode: !hc.NetworkMode || hc.NetworkMode === 'default' ? 'bridge' : hc.NetworkMode,
      PortBindings: hc.PortBindings ?? {},
      RestartPolicy: { Name: restart.Name || 'no', MaximumRetryCount: restart.MaximumRetryCount ?? 0 },
      AutoRemove: !!hc.AutoRemove,
      Links: hc.Links ?? null,
      Dns: hc.Dns ?? [],
      DnsOptions: hc.DnsOptions ?? [],
      DnsSearch: hc.DnsSearch ?? [],
      ExtraHosts: hc.ExtraHosts ?? null,
      PublishAllPorts: !!hc.PublishAllPorts,
      Privileged: !!hc.Privileged,
    };
    for (const h of hostConfig.ExtraHosts ?? []) parseExtraHost(h);
    // Mounts last: planning them creates volumes, undone if anything after fails.
    const wantsMounts = !!(hc.Binds?.length || hc.Mounts?.length || (hc.Tmpfs && Object.keys(hc.Tmpfs).length) || hc.VolumesFrom?.length || config.Volumes || imageVolumes(img).length);
    if (wantsMounts && !this.mounter) throw invalidParameter('volumes and mounts are not available in this daemon');
    const planned = wantsMounts ? this.mounter!.plan(hc, [...imageVolumes(img), ...Object.keys(config.Volumes ?? {})], (ref) => {
      const other = this.find(ref);
      // 400, not 404: a 404 on create makes the docker CLI go and pull the image
      if (!other) throw invalidParameter(`No such container: ${ref}`);
      return other.mounts ?? [];
    }) : undefined;
    const c: ContainerRecord = {
      id, name, created: nowIso(), networkMode: mode, path: argv[0]!, args: argv.slice(1), imageId: img.id, config, hostConfig,
      networkRequests: requests, state: emptyState(), restartCount: 0, endpoints: {},
      hostnamePath: path.join(stateDir, 'hostname'), hostsPath: path.join(stateDir, 'hosts'),
      resolvConfPath: path.join(stateDir, 'resolv.conf'), logPath: path.join(stateDir, 'stdout.log'), stateDir,
      ...(planned?.mounts.length ? { mounts: planned.mounts } : {}),
    };
    try {
      fs.mkdirSync(stateDir, { recursive: true });
      // The etc files are made here, with the container's directory, and only rewritten at each start:
      // creating a file costs 0.1-0.4 ms on some disks, rewriting one in place a tenth of that, and a start
      // (the networking of a `run`) is what users wait on. In place also keeps the inodes runc bind-mounts.
      for (const f of [c.hostnamePath, c.hostsPath, c.resolvConfPath]) fs.writeFileSync(f, '');
      this.save(c);
    } catch (e) {
      fs.rmSync(stateDir, { recursive: true, force: true });
      planned?.undo();
      if (/UNIQUE/.test(messageOf(e))) throw conflict(`Conflict. The container name "/${name}" is already in use.`);
      throw e;
    }
    this.events.publish('container', 'create', id, { name, image: body.Image });
    return c;
  }

  /** 'bridge' | 'host' | 'none' | 'container:<id>' | <network name> */
  networkMode(c: ContainerRecord): string {
    return c.networkMode;
  }

  // ------------------------------------------------------------------ start

  start(ref: string): Promise<void> {
    const c0 = this.get(ref);
    return this.locked(c0.id, async () => {
      const c = this.reload(c0.id);
      if (!c) throw notFound(`No such container: ${ref}`);
      if (c.state.Paused) throw conflict('cannot start a paused container, try unpause instead');
      if (c.state.Running) throw notModified('container already started');
      this.cancelRestart(c);
      // Docker's ResetRestartManager(true): a start by the user begins the count and the back-off anew
      c.stoppedByUser = false;
      c.restartCount = 0;
      this.backoff.delete(c.id);
      try {
        await this.startLocked(c);
      } catch (e) {
        // as Docker's containerStart: an --rm container that fails to start is removed
        if (c.hostConfig.AutoRemove) await this.removeLocked(c.id, true).catch((re) => this.log.warn({ id: c.id, err: messageOf(re) }, 'auto-remove after failed start'));
        throw e;
      }
    });
  }

  private async startLocked(c: ContainerRecord): Promise<void> {
    const undo: (() => Promise<void> | void)[] = [];
    const mode = this.networkMode(c);
    let linkEnvs: string[] = [];
    let netns: string | 'host';
    let etc = { hosts: c.hostsPath, resolvConf: c.resolvConfPath, hostname: c.hostnamePath };
    try {
      if (mode === 'host') {
        netns = 'host';
        this.writeEtcFiles(c, 'host');
      } else if (mode.startsWith('container:')) {
        const other = this.find(mode.slice('container:'.length));
        if (!other) throw notFound(`No such container: ${mode.slice('container:'.length)}`);
        if (!other.state.Running) throw conflict(`cannot join network namespace of a non running container: ${other.name}`);
        const otherMode = this.networkMode(other);
        netns = otherMode === 'host' ? 'host' : other.netnsPath!;
        // The joined container's view of the network: its hosts and resolv.conf; a hostname of our own.
        c.config.Hostname = c.config.Hostname || other.config.Hostname;
        fs.writeFileSync(c.hostnamePath, `${c.config.Hostname}\n`);
        etc = { hosts: other.hostsPath, resolvConf: other.resolvConfPath, hostname: c.hostnamePath };
      } else {
        const nsPath = path.join(this.opts.netnsDir, netnsFileName(this.opts.netnsPrefix, c.name, c.id));
        if (netnsExists(nsPath)) deleteNetns(nsPath); // a leftover of a crash: its endpoints were rolled back at restore
        c.netnsPath = nsPath;
        this.save(c);
        createNetns(nsPath);
        failpoint('start.netns');
        undo.push(() => {
          deleteNetns(nsPath);
          c.netnsPath = undefined;
        });
        netns = nsPath;
        if (mode === 'none') {
          await configureInterface(nsPath, { ifname: 'lo', addresses: [], loUp: true });
        } else {
          let first = true;
          let idx = 0;
          for (const netName of Object.keys(c.networkRequests)) {
            const ep = await this.attachEndpoint(c, netName, `eth${idx++}`, first, undo);
            if (ep.gateway4 && !this.nets.get(ep.networkId).internal) first = false;
          }
          // overlay endpoints have no way out: Docker's docker_gwbridge endpoint (eth1) gives one
          const gw = await this.nets.gatewayFor(Object.values(c.endpoints));
          if (gw) await this.attachEndpoint(c, gw, `eth${idx++}`, true, undo);
        }
        linkEnvs = await this.publishAndLink(c, undo);
        failpoint('start.published');
        this.writeEtcFiles(c, mode);
        if (this.usesEmbeddedDns(c)) {
          undo.push(() => this.dns?.detach(c.id));
          await this.startDns(c);
          failpoint('start.dns');
        }
      }
      if (!this.images.find(c.imageId)) throw conflict(`image ${c.imageId} of container ${c.name} no longer exists`);
      // the undo first: a prepare that fails half-way leaves no volume mounted either
      if (c.mounts?.length) undo.push(() => this.mounter!.release(c.mounts, (n) => this.volumeRunning(n, c.id)));
      const mounts = c.mounts?.length ? this.mounter!.prepare(c.mounts) : undefined;
      this.runStarts.set(c.id, { ...logSizes(this.runc.logPaths(c.stateDir)), attached: (this.startListeners.get(c.id)?.size ?? 0) > 0 });
      const { pid, startedAt } = await this.runc.start({
        id: c.id,
        rootfsLower: this.images.lowerDirs(c.imageId),
        stateDir: c.stateDir,
        args: [c.path, ...c.args],
        // a variable without `=` unsets it (moby's ReplaceOrAppendEnvValues); runc would refuse it
        env: ensurePath(mergeEnv(linkEnvs, c.config.Env).filter((e) => e.includes('='))),
        cwd: c.config.WorkingDir || '/',
        user: c.config.User || undefined,
        hostname: c.config.Hostname,
        tty: c.config.Tty,
        openStdin: c.config.OpenStdin,
        netns,
        etcFiles: etc,
        labels: c.config.Labels,
        ...(c.hostConfig.Init ? { init: findInit() } : {}),
        ...(mounts ? { mounts: mounts.oci, prepareRootfs: mounts.fill } : {}),
      });
      failpoint('start.runc');
      // HostConfig.ConsoleSize [rows, cols]: the terminal's first size (the docker CLI sends it with -t)
      const cs = c.hostConfig.ConsoleSize;
      if (c.config.Tty && Array.isArray(cs) && cs[0] && cs[1]) {
        try {
          const tty = processTerminal(pid);
          if (tty) setWindowSize(tty, Number(cs[0]), Number(cs[1]));
        } catch (e) {
          this.log.debug({ id: c.id, err: messageOf(e) }, 'initial console size not set');
        }
      }
      c.state = { ...emptyState(), Status: 'running', Running: true, Pid: pid, StartedAt: startedAt, FinishedAt: c.state.FinishedAt };
      this.save(c);
      for (const fn of this.startListeners.get(c.id) ?? []) fn();
    } catch (e) {
      for (const u of undo.reverse()) {
        try {
          await u();
        } catch (ue) {
          this.log.error({ id: c.id, err: messageOf(ue) }, 'rollback step failed');
        }
      }
      c.state.Error = messageOf(e);
      // Docker's setExitCodeFromError: 126 for a command that cannot be run, 127 for one that is not there,
      // else 128 (unless an exit code is already recorded)
      const m = messageOf(e).toLowerCase();
      if (!(e instanceof LoomError) && /permission denied|is a directory/.test(m)) c.state.ExitCode = 126;
      else if (!(e instanceof LoomError) && /executable file not found|no such file or directory|not a directory|system cannot find the file specified/.test(m)) c.state.ExitCode = 127;
      else if (!c.state.ExitCode) c.state.ExitCode = 128;
      c.endpoints = {};
      this.save(c);
      if (e instanceof LoomError) throw e;
      throw systemError(`failed to start container ${c.name}: ${messageOf(e)}`);
    }
    this.watchExit(c.id);
    // as moby: each volume's mount, then the start
    for (const m of c.mounts ?? []) {
      if (m.Type === 'volume') this.events.publish('volume', 'mount', m.Name, { driver: m.Driver, container: c.id, destination: m.Destination, 'read/write': String(m.RW), propagation: m.Propagation });
    }
    this.events.publish('container', 'start', c.id, { name: c.name, image: c.config.Image });
    this.refreshParentsHosts(c);
  }

  /**
   * Links resolved against running containers: hosts entries, env, and the linked endpoint's address.
   * Strict at start (a link to a missing or stopped container is refused); `lenient` skips those, for
   * rewriting a running container's hosts file and link rules when one of its linked containers changes.
   */
  private resolveLinks(c: ContainerRecord, lenient = false): { alias: string; linked: ContainerRecord; ip: string; entry: HostsEntry }[] {
    const out = [];
    // On the default bridge a link needs the linked container there too (Docker's isLinkable)
    const isDefault = (e: EndpointRecord) => !!this.nets.peek(e.networkId)?.isDefault;
    const onDefault = Object.values(c.endpoints).some(isDefault);
    for (const l of parseLinks(c.hostConfig.Links)) {
      const linked = this.find(l.name);
      const eps = linked ? Object.values(linked.endpoints) : [];
      const ep = onDefault ? eps.find(isDefault) : eps.find((e) => e.networkName in c.endpoints) ?? eps[0];
      if (lenient && (!linked?.state.Running || !ep?.ipv4)) continue;
      // a linked container removed since: Docker's words for a link it cannot make (dockerd 20.10 seen)
      if (!linked) throw conflict(`Cannot link to a non running container: /${l.name} AS /${c.name}/${l.alias}`);
      if (!linked.state.Running) throw conflict(`Cannot link to a non running container: /${linked.name} AS /${c.name}/${l.alias}`);
      if (!ep?.ipv4) throw conflict(`Cannot link to /${linked.name}, as it does not belong to the default network`);
      const names = [...new Set([l.alias, linked.config.Hostname, linked.name])];
      out.push({ alias: l.alias, linked, ip: ep.ipv4, entry: { ip: ep.ipv4, names } });
    }
    return out;
  }

  /** Where ports and links go: the first endpoint with an address, or the gateway network's (overlay containers publish there, as in Docker). */
  private primaryOf(c: ContainerRecord): EndpointRecord | undefined {
    const eps = Object.values(c.endpoints).filter((e) => e.ipv4);
    return eps.find((e) => { const n = this.nets.peek(e.networkId); return !!n && this.nets.isGatewayNetwork(n); }) ?? eps[0];
  }

  /** Holds the published host ports, adds port and link elements to the firewall (one transaction). */
  private async publishAndLink(c: ContainerRecord, undo: (() => Promise<void> | void)[]): Promise<string[]> {
    const primary = this.primaryOf(c);
    const links = this.resolveLinks(c);
    if (!primary) return [];
    const net = this.nets.get(primary.networkId);
    // as Docker: ports and links are a bridge's (macvlan, ipvlan... endpoints are on the wire themselves)
    if (!this.nets.publishes(net)) return [];
    const rt = { held: [] as HeldPort[], fwPorts: [] as FwPort[], fwLinks: [] as FwLink[] };
    this.published.set(c.id, rt);
    undo.push(() => {
      for (const h of rt.held) this.ports.release(h);
      this.published.delete(c.id);
      c.published = undefined;
    });
    const mappings: Mapping[] = [];
    if (!net.internal) {
      for (const r of portRequests(c, net.options[OPT_HOST_BINDING] || '0.0.0.0')) {
        let h: HeldPort;
        try {
          const target = `${primary.ipv4}:${r.containerPort}`;
          h = r.hostFrom ? this.ports.hold(r.proto, r.hostIp, r.hostFrom, r.hostTo, target) : this.ports.holdAny(r.proto, r.hostIp);
        } catch (e) {
          // Docker's wording, which names the container and its endpoint before the port's own message
          if (e instanceof LoomError) throw new LoomError(e.status, `failed to set up container networking: driver failed programming external connectivity on endpoint ${c.name} (${primary.id}): ${e.message}`);
          throw e;
        }
        rt.held.push(h);
        mappings.push({ proto: r.proto, containerPort: r.containerPort, hostIp: r.hostIp, hostPort: h.port });
      }
      // IPv6, as Docker's ip6tables DNAT: a port published on every address answers on [::] as well when
      // the container has an IPv6 address (held on [::]:port, shown as HostIp "::")
      if (primary.ipv6 && net.enableIPv6) {
        for (const m of mappings.filter((x) => !x.hostIp)) {
          rt.held.push(this.ports.hold(m.proto, '::', m.hostPort));
          mappings.push({ ...m, hostIp: '::' });
        }
      }
    }
    rt.fwPorts = portsByFamily(mappings, primary, net.bridge!);
    rt.fwLinks = links.flatMap((l) => linkRules(net.bridge!, primary.ipv4!, l.linked, l.ip));
    if (rt.fwPorts.length || rt.fwLinks.length) {
      this.fw.apply({ addPorts: rt.fwPorts, addLinks: rt.fwLinks });
      undo.push(() => this.fw.apply({ removePorts: rt.fwPorts, removeLinks: rt.fwLinks }));
    }
    // saved with the start's "running" record: held ports and firewall elements of a container that is not
    // running are rebuilt from nothing at restore, so nothing before that needs this on disk
    c.published = mappings;
    // Docker sets the link environment for legacy links on the default bridge only
    const onDefault = Object.values(c.endpoints).some((e) => this.nets.peek(e.networkId)?.isDefault);
    return onDefault ? links.flatMap((l) => linkEnv(c.name, l.alias, l.linked, l.ip)) : [];
  }

  /** Running containers with a --link to `child` (copies). */
  private linkingTo(child: ContainerRecord): ContainerRecord[] {
    const out: ContainerRecord[] = [];
    for (const p of this.all()) {
      if (!p.state.Running || p.id === child.id || !p.hostConfig.Links?.length) continue;
      if (parseLinks(p.hostConfig.Links).some((l) => l.name === child.name)) out.push(structuredClone(p));
    }
    return out;
  }

  /** Containers linking to `child` get their /etc/hosts rewritten with its current address (in place: it is bind-mounted). */
  private refreshParentsHosts(child: ContainerRecord): void {
    for (const p of this.linkingTo(child)) {
      try {
        this.writeEtcFiles(p, p.networkMode);
        this.refreshLinkRules(p);
      } catch (e) {
        this.log.warn({ id: p.id, err: messageOf(e) }, 'cannot rewrite hosts file or link rules of linking container');
      }
    }
  }

  /** A stopped container's address may go to another one: the link exceptions naming it go (hosts files stay, as in Docker). */
  private dropParentLinkRules(child: ContainerRecord): void {
    for (const p of this.linkingTo(child)) {
      try {
        this.refreshLinkRules(p);
      } catch (e) {
        this.log.warn({ id: p.id, err: messageOf(e) }, 'cannot update link rules of linking container');
      }
    }
  }

  /** A running container's link exceptions (icc=false) follow its linked containers' current addresses. */
  private refreshLinkRules(p: ContainerRecord): void {
    const rt = this.published.get(p.id);
    const primary = this.primaryOf(p);
    const net = primary && this.nets.find(primary.networkId);
    if (!rt || !primary || !net || !this.nets.publishes(net)) return;
    const next = this.resolveLinks(p, true).flatMap((l) => linkRules(net.bridge!, primary.ipv4!, l.linked, l.ip));
    this.fw.apply({ removeLinks: rt.fwLinks, addLinks: next });
    rt.fwLinks = next;
  }

  /** Allocates, records and plugs one endpoint; pushes its undo. */
  private async attachEndpoint(c: ContainerRecord, netName: string, ifname: string, defaultRoute: boolean, undo: (() => Promise<void> | void)[]): Promise<EndpointRecord> {
    const net = this.nets.get(netName);
    // no request: the gateway network's endpoint, which the controller adds by itself
    const req = c.networkRequests[netName] ?? { aliases: [] };
    const ep = this.store.tx(() => {
      const ep = this.nets.allocateEndpoint(this.nets.get(net.id), c.id, ifname, req);
      c.endpoints[net.name] = ep;
      this.save(c);
      return ep;
    });
    undo.push(async () => {
      this.dnsNames.remove(c.id, net.id);
      await this.nets.leave(ep);
      this.store.tx(() => {
        this.nets.releaseEndpoint(ep);
        delete c.endpoints[net.name];
        this.save(c);
      });
    });
    failpoint('endpoint.allocated');
    await this.nets.join(ep, c.netnsPath!, defaultRoute);
    failpoint('endpoint.joined');
    // Recorded by the caller's next save (the start's "running", the connect's end), not committed here:
    // until then a crash leaves a container that is not running (restore releases all of its networking
    // whatever the phase) or, for connect, one whose endpoint restore finds in place. A commit is ~0.1 ms.
    ep.phase = 'ready';
    this.registerNames(c, ep);
    this.events.publish('network', 'connect', net.id, { container: c.id, name: net.name, type: net.driver });
    return ep;
  }

  /** User-defined networks get DNS: names, aliases and the short id resolve on that network. */
  private registerNames(c: ContainerRecord, ep: EndpointRecord): void {
    const net = this.nets.peek(ep.networkId);
    if (!net || net.isDefault || this.nets.isGatewayNetwork(net)) return;
    const req = c.networkRequests[ep.networkName];
    // a --link alias is a name for the linked container, seen by this one only
    this.dnsNames.setLinks(c.id, parseLinks(c.hostConfig.Links).map((l) => ({ alias: l.alias, name: l.name })));
    const names = [...new Set([c.name, c.id.slice(0, 12), c.config.Hostname, ...(req?.aliases ?? [])].map((n) => n.toLowerCase()))];
    this.dnsNames.add({ containerId: c.id, networkId: net.id, names, ipv4: ep.ipv4, ipv6: ep.ipv6, ptrName: `${c.name}.${net.name}` }, net.name);
  }

  /** Does this container use the embedded DNS (any user-defined network)? */
  private usesEmbeddedDns(c: ContainerRecord): boolean {
    return Object.values(c.endpoints).some((ep) => !this.nets.peek(ep.networkId)?.isDefault);
  }

  private async startDns(c: ContainerRecord): Promise<void> {
    if (!this.dns || !c.netnsPath || !this.usesEmbeddedDns(c)) return;
    const allInternal = Object.values(c.endpoints).every((ep) => this.nets.peek(ep.networkId)?.internal);
    const host = parseResolvConf(readOr(this.opts.resolvConf));
    let upstream = c.hostConfig.Dns?.length ? c.hostConfig.Dns : host.nameservers;
    if (allInternal) upstream = [];
    this.dnsNames.setUpstreams(c.id, upstream);
    this.dnsNames.setSearch(c.id, c.hostConfig.DnsSearch?.length ? c.hostConfig.DnsSearch : host.search);
    await this.dns.attach(c.id, c.netnsPath);
  }

  private writeEtcFiles(c: ContainerRecord, mode: string): void {
    const hostname = c.config.Hostname;
    const fqdn = c.config.Domainname ? [`${hostname}.${c.config.Domainname}`, hostname] : [hostname];
    writeIfChanged(c.hostnamePath, `${hostname}\n`);
    // "host-gateway" is the default bridge's gateway address (dockerd's default host-gateway-ip)
    // (the predefined network `bridge` is the default one; peeked, not a copy of every network per start)
    const def = this.nets.peek('bridge');
    const gw = def?.isDefault ? def.ipam.config.find((x) => x.Gateway && !x.Gateway.includes(':'))?.Gateway : undefined;
    const extra: HostsEntry[] = (c.hostConfig.ExtraHosts ?? []).map(parseExtraHost).map((e) => (e.ip === 'host-gateway' && gw ? { ...e, ip: gw } : e));
    if (mode === 'host') {
      let host = '';
      try { host = fs.readFileSync(this.opts.hostsFile, 'utf8'); } catch { /* none */ }
      writeIfChanged(c.hostsPath, host + extra.map((e) => `${e.ip}\t${e.names.join(' ')}\n`).join(''));
    } else {
      const self: HostsEntry[] = Object.values(c.endpoints).flatMap((ep) => [
        ...(ep.ipv4 ? [{ ip: ep.ipv4, names: fqdn }] : []),
        ...(ep.ipv6 ? [{ ip: ep.ipv6, names: fqdn }] : []),
      ]);
      // a linked container that went away loses its entry; the others keep theirs
      const links = this.resolveLinks(c, true).map((l) => l.entry);
      writeIfChanged(c.hostsPath, renderHosts({ self, extra, links }));
    }
    let hostResolv = '';
    try { hostResolv = fs.readFileSync(this.opts.resolvConf, 'utf8'); } catch { /* none */ }
    const internal = mode !== 'host' && this.usesEmbeddedDns(c);
    writeIfChanged(c.resolvConfPath, renderResolvConf(parseResolvConf(hostResolv), {
      dns: c.hostConfig.Dns, search: c.hostConfig.DnsSearch, options: c.hostConfig.DnsOptions,
      ...(internal ? { internalResolver: '127.0.0.11' } : {}),
    }));
  }

  // ------------------------------------------------------------------ exit handling

  private watchExit(id: string): void {
    const c = this.reload(id);
    if (!c) return;
    const done = this.runc.waitExit(id, c.stateDir).then(
      (st) => this.handleExit(id, st),
      (e) => this.handleExit(id, { exitCode: 255, finishedAt: nowIso(), oomKilled: false, error: messageOf(e) }),
    ).catch((e) => this.log.error({ id, err: messageOf(e) }, 'exit handling failed'));
    this.exited.set(id, done);
  }

  /** Releases what a running container held (networking, runtime mounts), records the exit, tells waiters. */
  private async handleExit(id: string, st: ExitStatus): Promise<void> {
    const c = this.reload(id);
    if (!c || !c.state.Running) return;
    await this.releaseNetworking(c);
    failpoint('exit.released');
    await this.runc.cleanup(id, c.stateDir).catch((e) => this.log.warn({ id, err: messageOf(e) }, 'runtime cleanup failed'));
    this.mounter?.release(c.mounts, (n) => this.volumeRunning(n, id));
    for (const m of c.mounts ?? []) if (m.Type === 'volume') this.events.publish('volume', 'unmount', m.Name, { driver: m.Driver, container: id });
    c.state = { ...c.state, Status: 'exited', Running: false, Paused: false, Pid: 0, ExitCode: st.exitCode, FinishedAt: st.finishedAt, OOMKilled: st.oomKilled, Error: st.error ?? '' };
    // a restart is decided with the exit, in the same record (never seen "exited" in between, as Docker)
    const restart = !c.hostConfig.AutoRemove && shouldRestart(c, st.exitCode);
    if (restart) this.scheduleRestart(c);
    else this.save(c);
    this.dropParentLinkRules(c);
    this.events.publish('container', 'die', id, { name: c.name, image: c.config.Image, exitCode: String(st.exitCode) });
    for (const fn of this.exitListeners.get(id) ?? []) fn();
    this.settleWaiters(id, ['not-running', 'next-exit'], st.exitCode);
    if (c.hostConfig.AutoRemove) {
      void this.locked(id, () => this.removeLocked(id, true)).catch((e) => this.log.error({ id, err: messageOf(e) }, 'auto-remove failed'));
    }
  }

  private readonly restartTimers = new Map<string, { timer: NodeJS.Timeout; delay: number }>();
  private readonly backoff = new Map<string, number>();

  /** Docker's restart manager: 100 ms, doubling per quick failure up to a minute; reset after 10 s of running. */
  private scheduleRestart(c: ContainerRecord): void {
    const ranMs = Date.parse(c.state.FinishedAt) - Date.parse(c.state.StartedAt);
    let delay = this.backoff.get(c.id) ?? 100;
    if (ranMs >= 10_000) delay = 100;
    this.backoff.set(c.id, Math.min(delay * 2, 60_000));
    // Docker counts the restart when it decides on it (RestartCount shows during the back-off)
    c.restartCount++;
    c.state = { ...c.state, Status: 'restarting', Restarting: true };
    this.save(c);
    const timer = setTimeout(() => {
      this.restartTimers.delete(c.id);
      void this.locked(c.id, async () => {
        const cur = this.reload(c.id);
        if (!cur || cur.state.Running || !cur.state.Restarting) return;
        if (cur.stoppedByUser) {
          // a stop came between the timer and this turn of the lock: it wins
          cur.state = { ...cur.state, Status: 'exited', Restarting: false };
          this.save(cur);
          return;
        }
        // still "restarting" (listed by ps) until the start has succeeded or failed
        try {
          await this.startLocked(cur);
        } catch (e) {
          // as Docker's monitor: a restart that cannot start leaves the container stopped
          this.log.warn({ id: c.id, err: messageOf(e) }, 'restart failed');
          const again = this.reload(c.id)!;
          again.state = { ...again.state, Status: 'exited', Restarting: false };
          this.save(again);
        }
      }).catch(() => {});
    }, delay);
    timer.unref();
    this.restartTimers.set(c.id, { timer, delay });
  }

  /** A pending restart is cancelled by stop/kill/rm. Returns true if there was one. */
  private cancelRestart(c: ContainerRecord): boolean {
    const t = this.restartTimers.get(c.id);
    if (!t) return false;
    clearTimeout(t.timer);
    this.restartTimers.delete(c.id);
    c.state = { ...c.state, Status: 'exited', Restarting: false };
    this.save(c);
    return true;
  }

  /** Leaves every endpoint and deletes the namespace; keeps going on errors and logs each. */
  private async releaseNetworking(c: ContainerRecord): Promise<void> {
    this.dnsNames.removeContainer(c.id);
    await this.dns?.detach(c.id).catch((e) => this.log.warn({ id: c.id, err: messageOf(e) }, 'dns detach failed'));
    const rt = this.published.get(c.id);
    if (rt) {
      try {
        if (rt.fwPorts.length || rt.fwLinks.length) this.fw.apply({ removePorts: rt.fwPorts, removeLinks: rt.fwLinks });
      } catch (e) {
        this.log.error({ id: c.id, err: messageOf(e) }, 'removing firewall elements failed');
      }
      for (const h of rt.held) this.ports.release(h);
      this.published.delete(c.id);
    }
    if (c.published) {
      c.published = undefined;
      this.save(c);
    }
    for (const ep of Object.values(c.endpoints).reverse()) {
      try {
        await this.nets.leave(ep, { sandboxGoing: !!c.netnsPath });
      } catch (e) {
        this.log.error({ id: c.id, ep: ep.id, err: messageOf(e) }, 'endpoint leave failed');
      }
      this.store.tx(() => {
        this.nets.releaseEndpoint(ep);
        delete c.endpoints[ep.networkName];
        this.save(c);
      });
      this.events.publish('network', 'disconnect', ep.networkId, { container: c.id, name: ep.networkName, type: 'bridge' });
    }
    if (c.netnsPath) {
      try {
        deleteNetns(c.netnsPath);
      } catch (e) {
        this.log.error({ id: c.id, err: messageOf(e) }, 'netns delete failed');
      }
      c.netnsPath = undefined;
      this.save(c);
    }
  }

  private settleWaiters(id: string, conds: WaitCondition[], code: number): void {
    const set = this.waiters.get(id);
    if (!set) return;
    for (const w of [...set]) {
      if (conds.includes(w.cond)) {
        set.delete(w);
        w.resolve({ StatusCode: code, Error: null });
      }
    }
  }

  /** listeners for "this container's process now runs" (attachers that came before the start) */
  private readonly startListeners = new Map<string, Set<() => void>>();

  onProcessStart(id: string, fn: () => void): () => void {
    let set = this.startListeners.get(id);
    if (!set) this.startListeners.set(id, (set = new Set()));
    set.add(fn);
    return () => {
      set!.delete(fn);
      if (!set!.size) this.startListeners.delete(id);
    };
  }

  onProcessExit(id: string, fn: () => void): () => void {
    let set = this.exitListeners.get(id);
    if (!set) this.exitListeners.set(id, (set = new Set()));
    set.add(fn);
    return () => set!.delete(fn);
  }

  // ------------------------------------------------------------------ stop / kill / restart / remove

  stop(ref: string, timeoutSec?: number, signal?: string): Promise<void> {
    if (signal) normalizeSignal(signal); // a bad signal is refused before anything happens
    const c0 = this.get(ref);
    return this.locked(c0.id, async () => {
      const c = this.reloadOr404(c0.id);
      c.stoppedByUser = true;
      this.save(c);
      if (this.cancelRestart(c)) return;
      if (c.state.Restarting && !c.state.Running) {
        // its restart timer has fired and waits for this lock: it will see stoppedByUser and stay down
        c.state = { ...c.state, Status: 'exited', Restarting: false };
        this.save(c);
        return;
      }
      if (!c.state.Running) throw notModified('container already stopped');
      await this.stopLocked(c, timeoutSec, signal);
    });
  }

  private async stopLocked(c: ContainerRecord, timeoutSec?: number, signal?: string): Promise<void> {
    const t = timeoutSec ?? c.config.StopTimeout ?? 10;
    const sig = signal || c.config.StopSignal || 'SIGTERM';
    const done = this.exited.get(c.id) ?? Promise.resolve();
    this.events.publish('container', 'kill', c.id, { name: c.name, image: c.config.Image, signal: signalNumberOr(String(sig)) });
    await this.runc.kill(c.id, sig).catch(() => {});
    const timedOut = t < 0 ? false : await Promise.race([done.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), t * 1000).unref())]);
    if (timedOut) {
      this.events.publish('container', 'kill', c.id, { name: c.name, image: c.config.Image, signal: '9' });
      await this.runc.kill(c.id, 'SIGKILL').catch(() => {});
    }
    await done;
    this.events.publish('container', 'stop', c.id, { name: c.name, image: c.config.Image });
  }

  kill(ref: string, signal = 'SIGKILL'): Promise<void> {
    const sig = normalizeSignal(signal); // Docker checks the signal before looking the container up
    const c0 = this.get(ref);
    const isKill = sig === 'SIGKILL' || sig === '9';
    if (c0.state.Restarting && !c0.state.Running) {
      // Docker: a container waiting for its restart counts as running; a kill just cancels the restart
      return this.locked(c0.id, async () => {
        const c = this.reloadOr404(c0.id);
        c.stoppedByUser = true;
        this.save(c);
        this.cancelRestart(c);
        this.events.publish('container', 'kill', c.id, { name: c.name, image: c.config.Image, signal: signalNumber(sig) });
      });
    }
    const c = c0;
    if (!c.state.Running) throw conflict(`container ${c.id} is not running`);
    // As Docker's killWithSignal: any signal counts as the user stopping the container (no restart policy
    // afterwards), except one that differs from a configured stop signal.
    const stopSig = c.config.StopSignal ? normalizeSignal(c.config.StopSignal) : '';
    if (isKill || !stopSig || signalNumber(stopSig) === signalNumber(sig)) {
      c.stoppedByUser = true;
      this.save(c);
    }
    this.events.publish('container', 'kill', c.id, { name: c.name, image: c.config.Image, signal: signalNumber(sig) });
    return this.runc.kill(c.id, sig).then(async () => {
      if (isKill) await (this.exited.get(c.id) ?? Promise.resolve());
    });
  }

  restart(ref: string, timeoutSec?: number, signal?: string): Promise<void> {
    if (signal) normalizeSignal(signal);
    const c0 = this.get(ref);
    return this.locked(c0.id, async () => {
      const c = this.reloadOr404(c0.id);
      this.cancelRestart(c);
      if (c.state.Running) {
        c.stoppedByUser = true; // the stop half must not trigger the restart policy
        this.save(c);
        await this.stopLocked(c, timeoutSec, signal);
      }
      const again = this.reload(c0.id)!;
      again.stoppedByUser = false;
      again.restartCount = 0;
      this.backoff.delete(again.id);
      try {
        await this.startLocked(again);
      } catch (e) {
        // moby wraps whatever failed: "Cannot restart container x: ..."
        throw new LoomError(e instanceof LoomError ? e.status : 500, `Cannot restart container ${ref}: ${messageOf(e)}`);
      }
      this.events.publish('container', 'restart', c.id, { name: c.name, image: c.config.Image });
    });
  }

  /** log file sizes at the start of each container's current run */
  private readonly runStarts = new Map<string, { stdout: number; stderr: number; attached: boolean }>();

  /**
   * Where an attach streams from, for clients that start a container and then attach (docker-py's
   * dockerpty, compose's `run -T`): a short run may be over, or nearly, when the attach comes, and its
   * output written before the attach would be lost. So an attach within 2 s of a start that nobody was
   * attached to gets that run's output from its beginning: live on while it runs, or at once and then a
   * clean end (`ended`) when it is over already (waiting for a next start would hang the client).
   * Otherwise: the end of the logs, live output from now on (and an attach to a stopped container waits
   * for its start, which is how `start -a` works).
   */
  attachOffsets(c: ContainerRecord): { offsets: { stdout: number; stderr: number }; ended: boolean } {
    const now = logSizes(this.runc.logPaths(c.stateDir));
    const run = this.runStarts.get(c.id);
    const startedAgo = Date.now() - Date.parse(c.state.StartedAt);
    const fresh = !!run && !run.attached && startedAgo >= 0 && startedAgo < 2000;
    if (c.state.Running) {
      if (fresh || (run && (this.runc.hasExited(c.stateDir) || processGone(c.state.Pid)))) return { offsets: run!, ended: false };
      return { offsets: now, ended: false };
    }
    if (fresh && c.state.Status === 'exited') return { offsets: run!, ended: true };
    return { offsets: now, ended: false };
  }

  /** Is a volume used by a running container other than `except`? */
  private volumeRunning(name: string, except: string): boolean {
    for (const o of this.all()) if (o.id !== except && o.state.Running && o.mounts?.some((m) => m.Type === 'volume' && m.Name === name)) return true;
    return false;
  }

  remove(ref: string, force: boolean, removeVolumes = false): Promise<void> {
    const c0 = this.get(ref);
    return this.locked(c0.id, async () => {
      const c = this.reload(c0.id);
      if (!c) throw notFound(`No such container: ${ref}`);
      if (c.state.Restarting && !force) {
        throw conflict(`cannot remove container "${ref}": container is restarting: stop the container before removing or force remove`);
      }
      this.cancelRestart(c);
      if (c.state.Running) {
        if (!force) {
          throw conflict(c.state.Paused
            ? `cannot remove container "${ref}": container is paused and must be unpaused first`
            : `cannot remove container "${ref}": container is running: stop the container before removing or force remove`);
        }
        this.events.publish('container', 'kill', c.id, { name: c.name, image: c.config.Image, signal: '9' });
        await this.runc.kill(c.id, 'SIGKILL').catch(() => {});
        await (this.exited.get(c.id) ?? Promise.resolve());
      }
      await this.removeLocked(c.id, removeVolumes);
    });
  }

  private async removeLocked(id: string, removeVolumes = false): Promise<void> {
    const c = this.reload(id);
    if (!c) return;
    if (c.state.Running) return; // restarted meanwhile
    await this.releaseNetworking(c);
    failpoint('remove.released');
    await this.runc.remove(id, c.stateDir);
    failpoint('remove.runtime');
    this.store.tx(() => {
      this.store.releaseOwner(id);
      this.forget(id);
    });
    this.exited.delete(id);
    if (removeVolumes) this.mounter?.removeAnonymous(c.mounts);
    this.events.publish('container', 'destroy', id, { name: c.name, image: c.config.Image });
    this.settleWaiters(id, ['not-running', 'next-exit', 'removed'], c.state.ExitCode);
  }

  /** POST /containers/{id}/wait */
  wait(ref: string, cond: WaitCondition = 'not-running'): Promise<{ StatusCode: number; Error: { Message: string } | null }> {
    const c = this.get(ref);
    if (cond === 'not-running' && !c.state.Running) return Promise.resolve({ StatusCode: c.state.ExitCode, Error: null });
    return new Promise((resolve) => {
      let set = this.waiters.get(c.id);
      if (!set) this.waiters.set(c.id, (set = new Set()));
      set.add({ cond, resolve });
    });
  }

  async pause(ref: string): Promise<void> {
    const c = this.get(ref);
    if (c.state.Restarting) throw conflict(`Container ${c.id} is restarting, wait until the container is running`);
    if (!c.state.Running) throw conflict(`container ${c.id} is not running`);
    if (c.state.Paused) throw conflict(`Container ${c.id} is already paused`);
    await this.runc.pause(c.id);
    c.state = { ...c.state, Paused: true, Status: 'paused' };
    this.save(c);
    this.events.publish('container', 'pause', c.id, { name: c.name, image: c.config.Image });
  }

  async unpause(ref: string): Promise<void> {
    const c = this.get(ref);
    if (!c.state.Paused) throw conflict(`Container ${c.id} is not paused`);
    await this.runc.resume(c.id);
    c.state = { ...c.state, Paused: false, Status: 'running' };
    this.save(c);
    this.events.publish('container', 'unpause', c.id, { name: c.name, image: c.config.Image });
  }

  // ------------------------------------------------------------------ rename / update

  rename(ref: string, newNameIn: string): Promise<void> {
    const c0 = this.get(ref);
    if (!newNameIn) throw invalidParameter('Error when allocating new name: name can\'t be empty');
    const newName = validateContainerName(newNameIn);
    return this.locked(c0.id, async () => {
      const c = this.reloadOr404(c0.id);
      if (c.name === newName) throw invalidParameter(`Renaming a container with the same name as its current name`);
      const clash = this.find(newName);
      if (clash && clash.id !== c.id) {
        throw conflict(`Conflict. The container name "/${newName}" is already in use by container "${clash.id}". You have to remove (or rename) that container to be able to reuse that name.`);
      }
      const old = c.name;
      if (c.netnsPath) {
        const to = path.join(this.opts.netnsDir, netnsFileName(this.opts.netnsPrefix, newName, c.id));
        if (to !== c.netnsPath) moveNetns(c.netnsPath, to);
        c.netnsPath = to;
      }
      c.name = newName;
      this.save(c);
      // links that name the container follow it
      for (const p of [...this.all()].filter((x) => x.hostConfig.Links?.length).map((x) => structuredClone(x))) {
        const links = p.hostConfig.Links;
        if (!links?.some((l) => parseLinks([l])[0]!.name === old)) continue;
        p.hostConfig.Links = links.map((l) => {
          const s = parseLinks([l])[0]!;
          return s.name === old ? `${newName}:${s.alias}` : l;
        });
        this.save(p);
      }
      for (const ep of Object.values(c.endpoints)) this.registerNames(c, ep);
      this.refreshParentsHosts(c);
      this.events.publish('container', 'rename', c.id, { name: newName, oldName: `/${old}` });
    });
  }

  update(ref: string, body: { RestartPolicy?: { Name: string; MaximumRetryCount?: number } }): Promise<{ Warnings: string[] }> {
    if (body.RestartPolicy) validateRestartPolicy(body.RestartPolicy);
    const c0 = this.get(ref);
    return this.locked(c0.id, async () => {
      const c = this.reloadOr404(c0.id);
      const rp = body.RestartPolicy;
      if (rp && rp.Name) {
        if (c.hostConfig.AutoRemove && rp.Name !== 'no') {
          throw invalidParameter(`Cannot update container ${c.id}: Restart policy cannot be updated because AutoRemove is enabled for the container`);
        }
        c.hostConfig.RestartPolicy = { Name: rp.Name, MaximumRetryCount: rp.MaximumRetryCount ?? 0 };
        this.save(c);
      }
      this.events.publish('container', 'update', c.id, { name: c.name });
      return { Warnings: [] };
    });
  }

  // ------------------------------------------------------------------ network connect / disconnect

  connect(netRef: string, ctrRef: string, cfg: EndpointSettingsIn): Promise<void> {
    const c0 = this.get(ctrRef); // the container first, as moby looks them up
    const net = this.nets.get(netRef);
    return this.locked(c0.id, async () => {
      const c = this.reloadOr404(c0.id);
      const mode = c.networkMode;
      if (net.driver === 'host' || mode === 'host') throw invalidParameter('container cannot be disconnected from host network or connected to host network');
      if (net.driver === 'null' || mode === 'none') throw invalidParameter('container cannot be connected to multiple networks with one of the networks in private (none) mode');
      if (mode.startsWith('container:')) throw invalidParameter('container sharing network namespace with another container or host cannot be connected to any other network');
      if (net.name in c.networkRequests) throw new LoomError(403, `endpoint with name ${c.name} already exists in network ${net.name}`);
      const req = endpointRequest(cfg, undefined);
      if (net.isDefault && (req.aliases.length || req.ipv4 || req.ipv6)) {
        throw invalidParameter(req.aliases.length ? 'network-scoped alias is supported only for containers in user defined networks' : 'user specified IP address is supported on user defined networks only');
      }
      this.nets.validateEndpoint(net, req);
      c.networkRequests[net.name] = req;
      if (!c.state.Running) {
        // validate a wanted address now, as Docker does, without keeping it
        if (req.ipv4 || req.ipv6) this.store.db.exec('SAVEPOINT v');
        try {
          if (req.ipv4 || req.ipv6) this.nets.allocateEndpoint(net, c.id, 'eth9', req);
        } finally {
          if (req.ipv4 || req.ipv6) this.store.db.exec('ROLLBACK TO v; RELEASE v');
        }
        this.save(c);
        return;
      }
      const used = new Set(Object.values(c.endpoints).map((e) => e.ifname));
      let i = 0;
      while (used.has(`eth${i}`)) i++;
      const undo: (() => Promise<void> | void)[] = [];
      try {
        const hadDefault = Object.values(c.endpoints).some((e) => e.gateway4 && !this.nets.peek(e.networkId)?.internal);
        await this.attachEndpoint(c, net.name, `eth${i}`, !hadDefault, undo);
        this.writeEtcFiles(c, c.networkMode);
        await this.startDns(c);
      } catch (e) {
        for (const u of undo.reverse()) await Promise.resolve(u()).catch(() => {});
        delete c.networkRequests[net.name];
        this.save(c);
        throw e;
      }
      this.save(c);
    });
  }

  disconnect(netRef: string, ctrRef: string, force: boolean): Promise<void> {
    const c0 = this.find(ctrRef); // the container first, as moby looks them up
    if (!c0 && !force) throw notFound(`No such container: ${ctrRef}`);
    const net = this.nets.get(netRef);
    if (!c0) return Promise.resolve(); // -f of a container that is gone: its endpoints went with it
    return this.locked(c0.id, async () => {
      const c = this.reload(c0.id);
      if (!c) {
        if (force) return; // removed while this waited: its endpoints went with it
        throw notFound(`No such container: ${ctrRef}`);
      }
      if (c.networkMode === 'host' && net.driver === 'host') {
        if (c.state.Running) throw invalidParameter('container cannot be disconnected from host network or connected to host network');
        return; // moby lets a stopped one go; it has nothing to release
      }
      // moby's words: a stopped container is "not connected to the network", a running one "to network"
      if (!(net.name in c.networkRequests)) throw new LoomError(403, `container ${c.id} is not connected to ${c.state.Running ? '' : 'the '}network ${net.name}`);
      const ep = c.endpoints[net.name];
      if (ep) {
        this.dnsNames.remove(c.id, net.id);
        // the container's interface is taken out of use now, the veth deleted in the background
        await this.nets.leave(ep, c.netnsPath ? { netnsPath: c.netnsPath } : {}).catch((e) => {
          if (!force) throw e;
        });
        failpoint('disconnect.left');
        this.store.tx(() => {
          this.nets.releaseEndpoint(ep);
          delete c.endpoints[net.name];
          delete c.networkRequests[net.name];
          this.save(c);
        });
        this.events.publish('network', 'disconnect', net.id, { container: c.id, name: net.name, type: net.driver });
        this.writeEtcFiles(c, c.networkMode);
        if (!this.usesEmbeddedDns(c)) await this.dns?.detach(c.id);
      } else {
        delete c.networkRequests[net.name];
        this.save(c);
      }
    });
  }

  // ------------------------------------------------------------------ exec

  execCreate(ref: string, body: { Cmd?: string[]; Env?: string[]; WorkingDir?: string; User?: string; Tty?: boolean; AttachStdin?: boolean; AttachStdout?: boolean; AttachStderr?: boolean; Privileged?: boolean }): string {
    const c = this.get(ref);
    if (c.state.Restarting) throw conflict(`Container ${c.id} is restarting, wait until the container is running`);
    if (!c.state.Running) throw conflict(`container ${c.id} is not running`);
    if (c.state.Paused) throw conflict(`Container ${ref} is paused, unpause the container before exec`);
    if (!body.Cmd || body.Cmd.length === 0) throw invalidParameter('No exec command specified');
    if (body.User) {
      // Docker checks the user at create time (getUser), against the container's own account files
      try {
        resolveUserIn(`/proc/${c.state.Pid}/root`, body.User);
      } catch (e) {
        throw invalidParameter(messageOf(e));
      }
    }
    const id = newId();
    this.execs.set(id, {
      ID: id, containerId: c.id, Cmd: body.Cmd, Env: body.Env ?? [], WorkingDir: body.WorkingDir ?? '', User: body.User ?? '',
      Tty: !!body.Tty, AttachStdin: !!body.AttachStdin, AttachStdout: body.AttachStdout ?? true, AttachStderr: body.AttachStderr ?? true,
      Privileged: !!body.Privileged, Running: false, ExitCode: null, Pid: 0,
    });
    this.events.publish('container', `exec_create: ${body.Cmd.join(' ')}`, c.id, { name: c.name, execID: id });
    return id;
  }

  getExec(id: string): ExecRecord {
    const e = this.execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    return e;
  }

  // ------------------------------------------------------------------ terminal sizes

  /** The container's terminal gets the client's size (the docker CLI sends it after start and on SIGWINCH). */
  resize(ref: string, rows: number, cols: number): void {
    const c = this.get(ref);
    if (!c.state.Running) throw conflict(`container ${c.id} is not running`);
    if (!c.config.Tty) return; // nothing to size, as with moby's containerd process
    // the container's init has the console runc made for it on its stdin
    const tty = processTerminal(c.state.Pid);
    if (tty) setWindowSize(tty, rows, cols);
  }

  /**
   * An exec's terminal: runc's own terminal (the pty script(1) gives it) gets the size, and runc passes
   * it on to the exec's console, at once and on every SIGWINCH. As moby, waits for the exec to be started.
   */
  async resizeExec(id: string, rows: number, cols: number): Promise<void> {
    const ex = this.getExec(id);
    for (let i = 0; i < 100 && ex.ExitCode === null; i++) {
      const runcPid = ex.Running && ex.Tty && ex.Pid ? firstChild(ex.Pid) : undefined;
      const tty = runcPid && processTerminal(runcPid);
      if (tty) return setWindowSize(tty, rows, cols);
      if (ex.Running && !ex.Tty) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  // ------------------------------------------------------------------ restore after a daemon restart

  /**
   * Brings the model back in line with the kernel after a restart or crash: running containers are adopted
   * (their networking is still in place), containers that exited meanwhile get their exit recorded and
   * their networking released, and half-done work (endpoints still 'creating', namespaces of containers that
   * never started) is rolled back.
   */
  async restore(): Promise<void> {
    const pending = new Set<string>();
    for (const c of this.list()) {
      if (c.state.Running) {
        const r = await this.runc.adopt(c.id, c.stateDir).catch((e) => ({ running: false as const, status: { exitCode: 255, finishedAt: nowIso(), oomKilled: false, error: messageOf(e) } }));
        if (r.running) {
          for (const ep of Object.values(c.endpoints)) {
            if (ep.phase !== 'ready') this.log.warn({ id: c.id, ep: ep.id }, 'running container with an unfinished endpoint');
          }
          c.state.Pid = r.pid;
          this.save(c);
          this.remountNetns(c, r.pid);
          await this.dropVanishedEndpoints(c);
          this.rehold(c);
          for (const ep of Object.values(c.endpoints)) this.registerNames(c, ep);
          await this.startDns(c).catch((e) => this.log.warn({ id: c.id, err: messageOf(e) }, 'embedded DNS not back for container'));
          this.watchExit(c.id);
          this.log.info({ id: c.id, name: c.name, pid: r.pid }, 'adopted running container');
          continue;
        }
        this.log.info({ id: c.id, name: c.name, exitCode: r.status.exitCode }, 'container exited while the daemon was down');
        await this.handleExit(c.id, r.status);
        continue;
      }
      // A restart that was waiting out its back-off when the daemon went away: decided, so it happens now.
      if (c.state.Restarting && !this.restartTimers.has(c.id)) {
        c.state = { ...c.state, Status: 'exited', Restarting: false };
        this.save(c);
        pending.add(c.id);
      }
      // Not running: nothing of its networking may remain (a crash in the middle of start leaves some).
      if (Object.keys(c.endpoints).length || c.netnsPath) {
        this.log.info({ id: c.id, name: c.name }, 'rolling back networking of a container that is not running');
        await this.releaseNetworking(c);
        await this.runc.cleanup(c.id, c.stateDir).catch(() => {});
      }
    }
    // Restart policies at daemon start, as Docker's restore (container.ShouldRestart): `always` comes back
    // whatever stopped it, `unless-stopped` unless a user did, `on-failure` after a failure with retries
    // left; only containers that ran before. Like Docker's start at restore, this begins a new count.
    // Containers that link to others wait for them (a pass per level of links).
    let todo = this.list().filter((c) => !c.state.Running && !c.state.Restarting && (pending.has(c.id) || restartAtBoot(c)));
    while (todo.length) {
      const later: ContainerRecord[] = [];
      for (const c of todo) {
        const waitsFor = parseLinks(c.hostConfig.Links).some((l) => todo.some((o) => o.id !== c.id && o.name === l.name));
        if (waitsFor && later.length < todo.length - 1) {
          later.push(c);
          continue;
        }
        try {
          const cur = this.reload(c.id)!;
          cur.stoppedByUser = false;
          if (!pending.has(c.id)) cur.restartCount = 0;
          await this.startLocked(cur);
          this.log.info({ id: c.id, name: c.name, policy: c.hostConfig.RestartPolicy?.Name }, 'started by restart policy');
        } catch (e) {
          this.log.warn({ id: c.id, err: messageOf(e) }, 'restart policy start failed');
        }
      }
      if (later.length === todo.length) break;
      todo = later;
    }
    // Addresses owned by no endpoint that exists (a crash between reserve and record cannot happen: both
    // are in one transaction; this guards against older records).
    const live = new Set([...this.list().flatMap((c) => Object.values(c.endpoints).map((e) => e.id)), ...this.externalEndpoints().map((e) => e.id)]);
    for (const a of this.store.allAllocations()) {
      if (!live.has(a.owner)) this.store.releaseAddress(a.network_id, a.address);
    }
    this.mounter?.sweep((n) => this.volumeRunning(n, ''));
    const liveVeths = new Set([...[...this.all()].flatMap((c) => Object.values(c.endpoints)), ...this.externalEndpoints()].map((e) => e.hostVeth).filter((v): v is string => !!v));
    await this.nets.sweepOrphans(liveVeths).catch((e) => this.log.warn({ err: messageOf(e) }, 'sweeping leftover veths failed'));
  }

  /**
   * A daemon started where the earlier bind mount of a running container's namespace is not visible
   * (another mount namespace, a cleaned /run): the container's process still has it, so it is mounted
   * again from /proc/PID/ns/net, and DNS sockets, routes and rules are restored through it as usual.
   */
  private remountNetns(c: ContainerRecord, pid: number): void {
    if (!c.netnsPath || netnsExists(c.netnsPath)) return;
    try {
      try {
        fs.unlinkSync(c.netnsPath); // a leftover plain file where the mount was
      } catch { /* not there */ }
      bindNetns(`/proc/${pid}/ns/net`, c.netnsPath);
      this.log.warn({ id: c.id, name: c.name, netns: c.netnsPath, pid }, 'container namespace mount was gone: mounted again from its process');
    } catch (e) {
      this.log.error({ id: c.id, err: messageOf(e) }, 'cannot mount the namespace of a running container again');
    }
  }

  /**
   * An adopted container's endpoints whose interface is gone from its namespace (a crash between a
   * disconnect's leave and its record, or a hand-deleted link) are released, so that what inspect, DNS and
   * IPAM say matches the kernel: "running with complete networking" holds for what is left.
   */
  private async dropVanishedEndpoints(c: ContainerRecord): Promise<void> {
    if (!c.netnsPath || !Object.keys(c.endpoints).length) return;
    let rt: Rtnl | undefined;
    try {
      rt = Rtnl.open(c.netnsPath);
      for (const ep of Object.values(c.endpoints)) {
        if (!ep.ifname || await rt.getLink(ep.ifname)) continue;
        this.log.warn({ id: c.id, name: c.name, network: ep.networkName, ifname: ep.ifname }, 'endpoint interface is gone: releasing the endpoint');
        await this.nets.leave(ep).catch(() => {});
        this.store.tx(() => {
          this.nets.releaseEndpoint(ep);
          delete c.endpoints[ep.networkName];
          delete c.networkRequests[ep.networkName];
          this.save(c);
        });
      }
    } catch (e) {
      this.log.warn({ id: c.id, err: messageOf(e) }, 'checking the endpoints of an adopted container failed');
    } finally {
      rt?.close();
    }
  }

  /** `loom system reconcile`: the kernel checked against the records and repaired (see reconcile.ts). */
  reconcileKernel(): Promise<Difference[]> {
    return reconcile({
      runningContainers: () => this.list().filter((c) => c.state.Running),
      networks: () => this.nets.list(),
      ensureNetwork: async (net) => {
        const drv = this.nets.driverOf(net);
        if (!drv) throw new Error(`network ${net.name} has no driver loaded`);
        await drv.ensureNetwork(net);
      },
      join: (ep, ns, route) => this.nets.join(ep, ns, route),
      leave: (ep) => this.nets.leave(ep),
      isInternal: (id) => !!this.nets.peek(id)?.internal,
      remountNetns: (c) => this.remountNetns(c, c.state.Pid),
      dnsAttached: () => this.dns?.attached() ?? [],
      usesEmbeddedDns: (c) => this.usesEmbeddedDns(c),
      startDns: (c) => this.startDns(c),
      firewall: this.fw,
    });
  }

  /** After a restart: hold the published ports of an adopted container again and rebuild its firewall elements. */
  private rehold(c: ContainerRecord): void {
    const primary = this.primaryOf(c);
    if (!primary) return;
    const net = this.nets.find(primary.networkId);
    if (!net || !this.nets.publishes(net)) return;
    const rt = { held: [] as HeldPort[], fwPorts: [] as FwPort[], fwLinks: [] as FwLink[] };
    for (const m of c.published ?? []) {
      try {
        rt.held.push(this.ports.hold(m.proto, m.hostIp, m.hostPort));
      } catch (e) {
        this.log.warn({ id: c.id, port: m.hostPort, err: messageOf(e) }, 'published port taken while the daemon was down');
      }
    }
    rt.fwPorts = portsByFamily(c.published ?? [], primary, net.bridge!);
    rt.fwLinks = this.resolveLinks(c, true).flatMap((l) => linkRules(net.bridge!, primary.ipv4!, l.linked, l.ip));
    this.published.set(c.id, rt);
  }

  /** Port and link elements of every running container: the firewall's desired state after a restart. */
  firewallElements(): { ports: FwPort[]; links: FwLink[] } {
    const ports: FwPort[] = [];
    const links: FwLink[] = [];
    for (const rt of this.published.values()) {
      ports.push(...rt.fwPorts);
      links.push(...rt.fwLinks);
    }
    return { ports, links };
  }

  usesImage(imageId: string): string | undefined {
    for (const c of this.all()) if (c.imageId === imageId) return c.id;
    return undefined;
  }

  /** Containers attached to a network (running endpoints). */
  attachedTo(netId: string): ContainerRecord[] {
    return [...this.all()].filter((c) => Object.values(c.endpoints).some((e) => e.networkId === netId)).map((c) => structuredClone(c));
  }

  /** Every container that names the network, running or not (Docker refuses rm for these). */
  membersOf(netName: string): ContainerRecord[] {
    return [...this.all()].filter((c) => netName in c.networkRequests && c.state.Running).map((c) => structuredClone(c));
  }
}

/** Firewall elements per family: mappings on IPv6 host addresses go to the container's IPv6 address. */
function portsByFamily(ms: Mapping[], ep: EndpointRecord, bridge: string): FwPort[] {
  const v6 = (m: Mapping) => m.hostIp.includes(':');
  const out = firewallPorts(ms.filter((m) => !v6(m)), ep.ipv4!, bridge);
  if (ep.ipv6) out.push(...firewallPorts(ms.filter(v6).map((m) => (m.hostIp === '::' ? { ...m, hostIp: '' } : m)), ep.ipv6, bridge));
  return out;
}

function endpointRequest(e: EndpointSettingsIn, mac: string | undefined) {
  return {
    aliases: e.Aliases ?? [],
    ...(e.IPAMConfig?.IPv4Address ? { ipv4: e.IPAMConfig.IPv4Address } : {}),
    ...(e.IPAMConfig?.IPv6Address ? { ipv6: e.IPAMConfig.IPv6Address } : {}),
    ...(e.MacAddress || mac ? { mac: validateMac(e.MacAddress || mac!) } : {}),
  };
}

function validateMac(m: string): string {
  if (!/^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/.test(m)) throw invalidParameter(`invalid MAC address: ${m}`);
  return m.toLowerCase().replace(/-/g, ':');
}

export function parseExtraHost(h: string): HostsEntry {
  const i = h.indexOf(':');
  const j = h.indexOf('=');
  const cut = j > 0 ? j : i;
  if (cut <= 0) throw invalidParameter(`invalid extra host: ${h}`);
  const name = h.slice(0, cut);
  let ip = h.slice(cut + 1);
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  if (!ip) throw invalidParameter(`invalid extra host: ${h}`);
  return { ip, names: [name] };
}

/** moby's ValidateRestartPolicy, with its messages. */
function validateRestartPolicy(p: { Name: string; MaximumRetryCount?: number }): void {
  const n = p.MaximumRetryCount ?? 0;
  switch (p.Name) {
    case 'always': case 'unless-stopped': case 'no':
      if (n !== 0) throw invalidParameter(`invalid restart policy: maximum retry count can only be used with 'on-failure'${n < 0 ? ' and cannot be negative' : ''}`);
      return;
    case 'on-failure':
      if (n < 0) throw invalidParameter('invalid restart policy: maximum retry count cannot be negative');
      return;
    case '':
      return;
    default:
      throw invalidParameter(`invalid restart policy: unknown policy '${p.Name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`);
  }
}

/** Docker's ShouldRestart at daemon start: the user's stop only holds back `unless-stopped`. */
function restartAtBoot(c: ContainerRecord): boolean {
  if (c.hostConfig.AutoRemove || c.state.StartedAt === ZERO_TIME) return false;
  const p = c.hostConfig.RestartPolicy ?? { Name: 'no', MaximumRetryCount: 0 };
  switch (p.Name) {
    case 'always':
      return true;
    case 'unless-stopped':
      return !c.stoppedByUser;
    case 'on-failure':
      return c.state.ExitCode !== 0 && (!p.MaximumRetryCount || c.restartCount < p.MaximumRetryCount);
    default:
      return false;
  }
}

function shouldRestart(c: ContainerRecord, exitCode: number): boolean {
  if (c.stoppedByUser || c.hostConfig.AutoRemove) return false;
  const p = c.hostConfig.RestartPolicy ?? { Name: 'no', MaximumRetryCount: 0 };
  switch (p.Name) {
    case 'always':
    case 'unless-stopped':
      return true;
    case 'on-failure':
      return exitCode !== 0 && (!p.MaximumRetryCount || c.restartCount < p.MaximumRetryCount);
    default:
      return false;
  }
}

/** A process that is gone or a zombie (it has ended; its parent has not reaped it yet). */
function processGone(pid: number): boolean {
  if (!pid) return true;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

function logSizes(p: { stdout: string; stderr: string }): { stdout: number; stderr: number } {
  const size = (f: string) => {
    try {
      return fs.statSync(f).size;
    } catch {
      return 0;
    }
  };
  return { stdout: size(p.stdout), stderr: size(p.stderr) };
}

function readOr(p: string): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

function mergeEnv(base: string[], over: string[]): string[] {
  const m = new Map<string, string>();
  for (const e of [...base, ...over]) {
    const k = e.split('=', 1)[0]!;
    m.set(k, e);
  }
  return [...m.values()];
}

function ensurePath(env: string[]): string[] {
  return env.some((e) => e.startsWith('PATH=')) ? env : [DEFAULT_ENV_PATH, ...env];
}

function signalNumberOr(sig: string): string {
  try {
    return signalNumber(normalizeSignal(sig));
  } catch {
    return sig;
  }
}

/** A signal as Docker's events show it: its number. */
function signalNumber(sig: string): string {
  if (/^\d+$/.test(sig)) return sig;
  return String(os.constants.signals[sig as keyof typeof os.constants.signals] ?? sig);
}

export function normalizeSignal(s: string): string {
  // as moby's ParseSignal, 0 is no signal; past SIGRTMAX (64) the kernel has none (EINVAL, not a 500)
  if (/^\d+$/.test(s)) {
    if (Number(s) === 0 || Number(s) > 64) throw invalidParameter(`Invalid signal: ${s}`);
    return s;
  }
  const up = s.toUpperCase();
  const name = up.startsWith('SIG') ? up : `SIG${up}`;
  if (!(name in os.constants.signals)) throw invalidParameter(`Invalid signal: ${s}`);
  return name;
}

export { shortId };

/**
 * Rewrites an etc file in place (it is bind-mounted into the container) only when its text changes: a
 * read is ~20 µs here, a truncating write 0.1-0.4 ms on this machine's ext4, and a start rewrites three
 * files of which usually only the hosts file changes.
 */
function writeIfChanged(file: string, text: string): void {
  try {
    if (fs.readFileSync(file, 'utf8') === text) return;
  } catch { /* not there yet */ }
  fs.writeFileSync(file, text);
}

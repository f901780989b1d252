// System: ping, version, info, events.
import os from 'node:os';
import type { Daemon } from '../../daemon.ts';
import { route, STREAMED, filters, timestamp } from '../router.ts';
import { API_VERSION, MIN_API_VERSION, LOOM_VERSION } from '../router.ts';
import { nodeId } from '../../core/nodes.ts';
route('GET', '/_ping', (_d, { res }) => {
  // Builder-Version 1: the classic builder (what the docker CLI falls back to when it has no buildx)
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache, no-store, must-revalidate', Pragma: 'no-cache', 'Builder-Version': '1' });
  res.end('OK');
});
route('HEAD', '/_ping', (_d, { res }) => {
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': '0', 'Builder-Version': '1' });
  res.end();
});

route('GET', '/version', (d) => versionInfo(d));

function versionInfo(_d: Daemon) {
  return {
    Platform: { Name: 'loom' },
    Components: [{ Name: 'Engine', Version: LOOM_VERSION, Details: { ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: 'linux', Arch: 'amd64', KernelVersion: os.release() } }],
    Version: LOOM_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: 'loom',
    GoVersion: `node ${process.version}`,
    Os: 'linux',
    Arch: 'amd64',
    KernelVersion: os.release(),
    BuildTime: '2026-11-22T00:00:00.000000000+00:00',
  };
}

route('GET', '/info', async (d) => {
  const cluster = await clusterInfo(d);
  const cs = d.containers.list();
  const running = cs.filter((c) => c.state.Running && !c.state.Paused).length;
  const paused = cs.filter((c) => c.state.Paused).length;
  return {
    ID: d.id,
    Containers: cs.length,
    ContainersRunning: running,
    ContainersPaused: paused,
    ContainersStopped: cs.length - running - paused,
    Images: d.images.list().length,
    Driver: 'overlay2',
    DriverStatus: [['Backing Filesystem', 'overlay']],
    Plugins: { Volume: [], Network: d.networks.driverNames(), Authorization: null, Log: ['json-file'] },
    MemoryLimit: false, SwapLimit: false, CpuCfsPeriod: false, CpuCfsQuota: false, CPUShares: false, CPUSet: false, PidsLimit: false,
    IPv4Forwarding: true, BridgeNfIptables: false, BridgeNfIp6tables: false, Debug: d.opts.logLevel === 'debug',
    NFd: 0, OomKillDisable: false, NGoroutines: 0, SystemTime: new Date().toISOString(), LoggingDriver: 'json-file',
    CgroupDriver: 'cgroupfs', CgroupVersion: '1', NEventsListener: 0, KernelVersion: os.release(),
    OperatingSystem: 'loom on Linux', OSVersion: '', OSType: 'linux', Architecture: 'x86_64', IndexServerAddress: 'https://index.docker.io/v1/',
    RegistryConfig: d.registry.info(),
    NCPU: os.cpus().length, MemTotal: os.totalmem(), GenericResources: null, DockerRootDir: d.opts.dataRoot,
    HttpProxy: '', HttpsProxy: '', NoProxy: '', Name: os.hostname(), Labels: [], ExperimentalBuild: false,
    ServerVersion: LOOM_VERSION, Runtimes: { runc: { path: 'runc' } }, DefaultRuntime: 'runc',
    Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null, ...cluster?.swarm },
    // dockerd's pre-swarm cluster fields (API < 1.40), there when the daemon runs with --cluster-store
    ...cluster?.fields,
    LiveRestoreEnabled: true, Isolation: '', InitBinary: '', ContainerdCommit: { ID: '' }, RuncCommit: { ID: '' }, InitCommit: { ID: '' },
    SecurityOptions: [], Warnings: cluster?.warnings ?? null,
    DefaultAddressPools: d.opts.pools.map((p) => ({ Base: p.base, Size: p.size })),
  };
});

route('GET', '/events', (d, { req, res, query }) => {
  const f = filters(query);
  const since = timestamp(query, 'since');
  const untilSec = timestamp(query, 'until');
  const match = (e: { Type: string; Action: string; Actor: { ID: string; Attributes: Record<string, string> } }) =>
    (!f.type || f.type.includes(e.Type)) &&
    (!f.event || f.event.some((x) => e.Action === x || e.Action.startsWith(`${x}:`))) &&
    (!f.container || (e.Type === 'container' && f.container.some((x) => e.Actor.ID.startsWith(x) || e.Actor.Attributes.name === x))) &&
    (!f.network || (e.Type === 'network' && f.network.some((x) => e.Actor.ID.startsWith(x) || e.Actor.Attributes.name === x)));
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.flushHeaders();
  if (since !== undefined) for (const e of d.events.since(since)) if (match(e) && (!untilSec || e.time <= untilSec)) res.write(JSON.stringify(e) + '\n');
  if (untilSec !== undefined && untilSec * 1000 <= Date.now()) {
    res.end();
    return STREAMED;
  }
  const off = d.events.subscribe((e) => {
    if (match(e)) res.write(JSON.stringify(e) + '\n');
  });
  let timer: NodeJS.Timeout | undefined;
  // a timer past 2^31 ms would fire at once (node clamps it): such an end is as good as none
  const untilMs = untilSec !== undefined ? untilSec * 1000 - Date.now() : undefined;
  if (untilMs !== undefined && untilMs < 2 ** 31 - 1) timer = setTimeout(() => res.end(), untilMs);
  req.socket.on('close', () => {
    off();
    if (timer) clearTimeout(timer);
  });
  return STREAMED;
});

/** loom's extension: the kernel checked against the records, every difference repaired and listed. */
route('POST', '/system/reconcile', async (d) => ({ Differences: await d.containers.reconcileKernel() }));

/**
 * With --cluster-store: dockerd's ClusterStore/ClusterAdvertise, the member count (loom's ClusterMembers,
 * and classic swarm's SystemStatus rows), this host's node id in Swarm.NodeID (so `docker node ls` marks it)
 * and, while the store is out of reach, a warning saying so.
 */
async function clusterInfo(d: Daemon) {
  if (!d.cluster) return null;
  const st = await d.cluster.status();
  return {
    swarm: { NodeID: nodeId(d.cluster.hostId), NodeAddr: d.cluster.advertise },
    fields: {
      ClusterStore: d.opts.clusterStore, ClusterAdvertise: d.opts.clusterAdvertise ?? '',
      ClusterStoreStatus: st.reachable ? 'reachable' : st.error, ClusterMembers: st.members, ClusterMembersReady: st.ready,
      SystemStatus: [['Cluster Store', d.opts.clusterStore ?? ''], ['Cluster Advertise', d.cluster.advertise],
        ['Cluster Members', st.reachable ? `${st.members} (${st.ready} ready)` : 'unknown'], ['Cluster Store Status', st.reachable ? 'reachable' : st.error]],
    },
    warnings: st.reachable ? null : [`WARNING: ${st.error}`],
  };
}

// `loom daemon`: flags in dockerd's spirit, defaults that work on a fresh machine.
import { parseFlags, f } from './flags.ts';
import { runDaemon } from '../daemon.ts';
import { DOCKER_DEFAULT_POOLS, parsePoolFlag } from '../ipam/ipam.ts';
import { DEFAULT_PLUGIN_DIRS } from '../plugins/discovery.ts';

const specs = [
  f('--data-root', 'string'), f('--exec-root', 'string'), f('-H,--host', 'string'), f('--bip', 'string'),
  f('--icc', 'bool'), f('--ip-masq', 'bool'), f('--log-level', 'string'), f('-D,--debug', 'bool'),
  f('--default-address-pool', 'list'), f('--netns-dir', 'string'), f('--netns-prefix', 'string'),
  f('-b,--bridge-name', 'string'), f('--resolv-conf', 'string'), f('--hosts-file', 'string'), f('--cgroup-parent', 'string'),
  f('--plugins-dir', 'list'),
  f('--cluster-store', 'string'), f('--cluster-advertise', 'string'), f('--cluster-store-opt', 'list'),
  f('--insecure-registry', 'list'), f('--certs-dir', 'string'),
  f('--ovs', 'string'),
];

export async function daemonCommand(argv: string[], envHost: string): Promise<number> {
  const { flags } = parseFlags(argv, specs, { interspersed: true });
  const execRoot = flags['exec-root'] ?? '/run/loom';
  const hostFlag: string | undefined = flags.host;
  let socket = `${execRoot}/loom.sock`;
  if (hostFlag) socket = hostFlag.replace(/^unix:\/\//, '');
  else if (!flags['exec-root'] && envHost) socket = envHost.replace(/^unix:\/\//, '');
  await runDaemon({
    dataRoot: flags['data-root'] ?? '/var/lib/loom',
    execRoot,
    socket,
    bip: flags.bip,
    icc: flags.icc ?? true,
    ipMasq: flags['ip-masq'] ?? true,
    logLevel: flags.debug ? 'debug' : flags['log-level'] ?? 'info',
    pools: flags['default-address-pool'].length ? flags['default-address-pool'].map(parsePoolFlag) : DOCKER_DEFAULT_POOLS,
    netnsDir: flags['netns-dir'] ?? '/run/netns',
    netnsPrefix: flags['netns-prefix'] ?? 'loom-',
    bridgeName: flags['bridge-name'] ?? 'loom0',
    resolvConf: flags['resolv-conf'] ?? '/etc/resolv.conf',
    hostsFile: flags['hosts-file'] ?? '/etc/hosts',
    cgroupParent: flags['cgroup-parent'],
    clusterStore: flags['cluster-store'],
    clusterAdvertise: flags['cluster-advertise'],
    clusterStoreOpts: flags['cluster-store-opt'],
    insecureRegistries: flags['insecure-registry'],
    certsDir: flags['certs-dir'],
    // legacy plugins: sockets (NAME.sock) and spec files (NAME.spec|json), in Docker's places by default
    pluginDirs: flags['plugins-dir'].length ? flags['plugins-dir'] : DEFAULT_PLUGIN_DIRS,
    // openvswitch networks: managed (loom's own ovsdb-server/ovs-vswitchd) or unix:PATH (src/drivers/ovs.ts)
    ovs: flags.ovs,
  });
  return new Promise<number>(() => {}); // runs until a signal
}

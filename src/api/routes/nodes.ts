// The cluster's hosts through swarm's node endpoints (GET /nodes, GET/DELETE /nodes/{id}): what
// `docker node ls|inspect|rm` and `bin/loom node` ask, answered from the cluster store (src/core/nodes.ts).
import type { Daemon } from '../../daemon.ts';
import { route, STREAMED, bool, filters, noContent } from '../router.ts';
import { LoomError } from '../../util/errors.ts';
import { filterNodes, findNode, swarmNode } from '../../core/nodes.ts';

/** dockerd's answer to node requests when it is not part of a swarm (here: started without --cluster-store). */
function clusterOf(d: Daemon) {
  if (!d.cluster) {
    throw new LoomError(503, 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again. '
      + '(loom: start the daemon with --cluster-store etcd://HOST:PORT --cluster-advertise IP to list the cluster\'s hosts)');
  }
  return d.cluster;
}

route('GET', '/nodes', async (d, { query }) => filterNodes(await clusterOf(d).nodes(), filters(query)).map(swarmNode));

route('GET', '/nodes/{id}', async (d, { params }) => swarmNode(findNode(await clusterOf(d).nodes(), params.id!)));

route('DELETE', '/nodes/{id}', async (d, { params, query, res }) => {
  await clusterOf(d).removeNode(params.id!, bool(query, 'force'));
  noContent(res);
  return STREAMED;
});

// Networks: list, inspect, create, delete, connect, disconnect, prune.
import { route, STREAMED, bool, filters, json, noContent } from '../router.ts';
import { LoomError, invalidParameter } from '../../util/errors.ts';
import { inspectNetwork } from '../render.ts';
import { filterNetworks, pruneFilter } from '../../core/networks.ts';
import { validateBody } from '../schemas.ts';
import { cniOf, withCniAttachments } from '../../cni/attachments.ts';
route('GET', '/networks', (d, { query }) => {
  // The list form carries no Containers (Docker stopped filling them in API 1.28).
  return filterNetworks(d.networks.list(), filters(query), (n) => d.containers.attachedTo(n.id).length)
    .map((n) => inspectNetwork(n, []));
});

route('GET', '/networks/{id}', (d, { params, query }) => {
  const n = d.networks.get(params.id!);
  const out = inspectNetwork(n, n.driver === 'host' || n.driver === 'null' ? d.containers.list() : d.containers.attachedTo(n.id), bool(query, 'verbose'));
  return withCniAttachments(d, n.id, out);
});

route('POST', '/networks/create', async (d, { body, res }) => {
  const n = await d.networks.create(validateBody('networkCreate', await body()));
  d.events.publish('network', 'create', n.id, { name: n.name, type: n.driver });
  json(res, 201, { Id: n.id, Warning: '' });
  return STREAMED;
});

route('DELETE', '/networks/{id}', async (d, { params, res }) => {
  const n = d.networks.get(params.id!);
  await d.networks.remove(n, [...d.containers.attachedTo(n.id).map((c) => ({ name: c.name, endpointId: c.endpoints[n.name]?.id ?? '' })),
    ...cniOf(d).on(n.id).map((a) => ({ name: a.names[0] ?? a.containerId, endpointId: a.ep.id })), ...(d.networkPlugin?.on(n.id) ?? [])]);
  d.events.publish('network', 'destroy', n.id, { name: n.name, type: n.driver });
  noContent(res);
  return STREAMED;
});

route('POST', '/networks/{id}/connect', async (d, { params, body, res }) => {
  const b = validateBody('networkConnect', await body());
  if (!b.Container) throw invalidParameter('a container name or id is required');
  await d.containers.connect(params.id!, b.Container, b.EndpointConfig ?? {});
  noContent(res, 200);
  return STREAMED;
});

route('POST', '/networks/{id}/disconnect', async (d, { params, body, res }) => {
  const b = validateBody('networkDisconnect', await body());
  if (!b.Container) throw invalidParameter('a container name or id is required');
  await d.containers.disconnect(params.id!, b.Container, !!b.Force);
  noContent(res, 200);
  return STREAMED;
});

route('POST', '/networks/prune', async (d, { query }) => {
  const keep = pruneFilter(filters(query));
  const deleted: string[] = [];
  for (const n of d.networks.list()) {
    if (['bridge', 'host', 'none'].includes(n.name) || !keep(n)) continue;
    // as Docker: networks without endpoints go, even when stopped containers still name them
    if (d.containers.attachedTo(n.id).length || cniOf(d).on(n.id).length) continue;
    try {
      await d.networks.remove(n, []);
    } catch (e) {
      // as Docker's prune: a network that may not go (an overlay with endpoints on other hosts) is skipped
      if (e instanceof LoomError && e.status === 403) continue;
      throw e;
    }
    d.events.publish('network', 'destroy', n.id, { name: n.name, type: n.driver });
    deleted.push(n.name);
  }
  return { NetworksDeleted: deleted };
});

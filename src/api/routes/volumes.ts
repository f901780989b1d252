// Volumes (the local driver): create, list, inspect, remove, prune; and `system df`.
import type http from 'node:http';
import { route, STREAMED, bool, filters, json, noContent } from '../router.ts';
import { API_VERSION } from '../router.ts';
import { invalidParameter } from '../../util/errors.ts';
import { listContainer } from '../render.ts';
import { listImage } from '../imagejson.ts';
import { diskUsage } from '../../volumes/volumes.ts';

/** The API version the request was made with (its /vX.Y prefix; the current one without). */
function apiVersion(req: http.IncomingMessage): number {
  const m = /^\/v(\d+\.\d+)\//.exec(req.url ?? '');
  return Number(m ? m[1] : API_VERSION);
}

route('POST', '/volumes/create', async (d, { body, res }) => {
  const b = ((await body()) ?? {}) as { Name?: string; Driver?: string; DriverOpts?: Record<string, string> | null; Labels?: Record<string, string> | null; ClusterVolumeSpec?: unknown };
  if (b.ClusterVolumeSpec) throw invalidParameter('ClusterVolumeSpec is not supported by loom (no swarm)');
  const { volume, created } = d.volumes.create(b.Name || undefined, { driver: b.Driver, labels: b.Labels, options: b.DriverOpts });
  if (created) d.events.publish('volume', 'create', volume.name, { driver: volume.driver });
  json(res, 201, d.volumes.view(volume));
  return STREAMED;
});

route('GET', '/volumes', (d, { query }) => ({
  Volumes: d.volumes.filter(filters(query)).map((v) => d.volumes.view(v)),
  Warnings: null,
}));

route('POST', '/volumes/prune', (d, { query, req }) => {
  const r = d.volumes.prune(filters(query), apiVersion(req));
  for (const n of r.VolumesDeleted ?? []) d.events.publish('volume', 'destroy', n, { driver: 'local' });
  d.events.publish('volume', 'prune', '', { reclaimed: String(r.SpaceReclaimed) });
  return r;
});

route('GET', '/volumes/{name}', (d, { params }) => d.volumes.view(d.volumes.get(params.name!)));

route('DELETE', '/volumes/{name}', (d, { params, query, res }) => {
  const existed = !!d.volumes.find(params.name!);
  d.volumes.remove(params.name!, bool(query, 'force'));
  if (existed) d.events.publish('volume', 'destroy', params.name!, { driver: 'local' });
  noContent(res);
  return STREAMED;
});

route('GET', '/system/df', (d, { query }) => {
  const types = query.getAll('type');
  for (const t of types) if (!['container', 'image', 'volume', 'build-cache'].includes(t)) throw invalidParameter(`unknown object type: ${t}`);
  const want = (t: string) => !types.length || types.includes(t);
  const containers = d.containers.list();
  const nets = (n: string) => d.networks.find(n);
  const images = d.images.list();
  let layersSize = 0;
  const out: Record<string, unknown> = {};
  if (want('image')) {
    out.Images = images.map((i) => {
      layersSize += i.size;
      return { ...listImage(i, d.images.tagsOf(i.id), d.images.digestsOf(i.id)), Containers: containers.filter((c) => c.imageId === i.id).length };
    });
    out.LayersSize = layersSize;
  }
  if (want('container')) {
    out.Containers = containers.map((c) => {
      const rw = diskUsage(`${c.stateDir}/upper`);
      const img = d.images.find(c.imageId);
      return { ...listContainer(c, img, nets), SizeRw: rw, SizeRootFs: rw + (img?.size ?? 0) };
    });
  }
  if (want('volume')) out.Volumes = d.volumes.list().map((v) => d.volumes.view(v, true));
  if (want('build-cache')) out.BuildCache = [];
  return out;
});

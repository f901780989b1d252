// Manifest media types and shapes of the Docker schema2 and OCI image specs, and the platform choice in a
// manifest list / OCI index (linux/amd64, as dockerd on this machine picks).
import { LoomError } from '../../util/errors.ts';

export const MT = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
} as const;

/** What a pull asks for, in dockerd's order of preference. */
export const MANIFEST_ACCEPT = [MT.dockerManifest, MT.dockerList, MT.ociManifest, MT.ociIndex].join(', ');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string; 'os.version'?: string };
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ManifestIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

export const isIndex = (mt: string) => mt === MT.dockerList || mt === MT.ociIndex;
export const isImageManifest = (mt: string) => mt === MT.dockerManifest || mt === MT.ociManifest;

/** The media type of a manifest: the Content-Type, else its own mediaType field, else its shape (OCI allows none). */
export function manifestType(contentType: string | undefined, bytes: Buffer): string {
  const ct = (contentType ?? '').split(';')[0]!.trim();
  if (isIndex(ct) || isImageManifest(ct)) return ct;
  let j: { mediaType?: string; manifests?: unknown; config?: unknown; schemaVersion?: number };
  try {
    j = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new LoomError(500, `manifest is not JSON (Content-Type ${ct || 'none'})`);
  }
  if (j.mediaType && (isIndex(j.mediaType) || isImageManifest(j.mediaType))) return j.mediaType;
  if (j.schemaVersion === 1 || ct.includes('v1+prettyjws') || ct.includes('manifest.v1+json')) {
    throw new LoomError(500, 'unsupported manifest format: Docker Image manifest version 2, schema 1 (deprecated, refused as by Docker 28)');
  }
  if (Array.isArray(j.manifests)) return MT.ociIndex;
  if (j.config) return MT.ociManifest;
  throw new LoomError(500, `unsupported manifest media type: ${ct || 'none'}`);
}

/** linux/amd64 from an index (Docker's platform matcher: os and architecture; variant ignored on amd64). */
export function pickPlatform(index: ManifestIndex, os = 'linux', arch = 'amd64'): Descriptor {
  const d = index.manifests.find((m) => m.platform?.os === os && m.platform?.architecture === arch && isImageManifest(m.mediaType ?? MT.ociManifest));
  if (!d) {
    const have = index.manifests.map((m) => m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ''}` : 'unknown').join(', ');
    throw new LoomError(404, `no matching manifest for ${os}/${arch} in the manifest list entries${have ? ` (${have})` : ''}`);
  }
  return d;
}

export function parseManifest(bytes: Buffer): ImageManifest {
  const m = JSON.parse(bytes.toString('utf8')) as ImageManifest;
  if (!m.config?.digest || !Array.isArray(m.layers)) throw new LoomError(500, 'invalid image manifest: config or layers missing');
  for (const d of [m.config, ...m.layers]) checkDigest(d.digest);
  return m;
}

export function checkDigest(d: string): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(d)) {
    if (/^sha(384|512):[0-9a-f]+$/.test(d)) throw new LoomError(500, `unsupported digest algorithm: ${d}`);
    throw new LoomError(400, `invalid digest: ${d}`);
  }
  return d;
}

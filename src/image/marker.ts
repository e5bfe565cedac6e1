import type { BuiltImage } from './build.js';
import type { Descriptor, HistoryEntry, ImageConfig, Manifest } from '../content/oci.js';
import { UserError } from '../failure.js';

/**
 * Every image this action makes of a root with an `/etc` carries this file, in a small last layer of
 * its own. It names where the image went and the layers below it, so a sandbox started from the image
 * knows its base without being told: the next snapshot takes those layers as they are and replaces
 * this one (it is never stacked).
 */
export const MARKER_PATH = 'etc/depot-snapshot.json';

/** The marker of the image the sandbox came from, left out of the walk: the new image gets a new one. */
export const MARKER_REWRITTEN = {
  path: '/' + MARKER_PATH,
  reason: "the base image's snapshot marker (rewritten)",
};

/** The history comment of the marker layer: how a base made by this action is recognised. */
export const MARKER_COMMENT = 'snapshot marker';

export interface MarkerLayer extends Descriptor {
  diffId: string;
}

/** One repository the image was pushed to, and a tag of it there. */
export interface MarkerPlace {
  /** `registry/repository`. */
  repository: string;
  tag: string;
}

export interface Marker {
  schemaVersion: 1;
  /** `registry/repository` the image was pushed to first (empty for a dry run): `places[0]`. */
  repository: string;
  tag: string;
  /**
   * Every repository the image was pushed to, in the order of the `image` lines (absent in markers of
   * older versions, which name `repository` alone). The same in every registry: one digest.
   */
  places?: MarkerPlace[];
  created: string;
  layers: MarkerLayer[];
  /** The runtime config and history of those layers, inherited by the next snapshot. */
  config: ImageConfig['config'];
  history: HistoryEntry[];
}

export class MarkerError extends UserError {}

export function parseMarker(text: string): Marker {
  let m: Marker;
  try {
    m = JSON.parse(text) as Marker;
  } catch {
    throw new MarkerError(`/${MARKER_PATH} is not JSON`);
  }
  const okLayer = (l: MarkerLayer) =>
    typeof l?.digest === 'string' && typeof l.diffId === 'string' && typeof l.size === 'number';
  if (
    m?.schemaVersion !== 1 ||
    !Array.isArray(m.layers) ||
    !m.layers.every(okLayer) ||
    typeof m.repository !== 'string' ||
    (m.places !== undefined &&
      (!Array.isArray(m.places) ||
        !m.places.every((p) => typeof p?.repository === 'string' && typeof p.tag === 'string')))
  ) {
    throw new MarkerError(`/${MARKER_PATH} is not a marker this version understands`);
  }
  return m;
}

/**
 * The marker for an image whose other layers are those of `draft`, pushed to `places` (none for a
 * dry run). `repository`/`tag` repeat the first place, for readers that know no other.
 */
export function markerFor(draft: BuiltImage, places: MarkerPlace[], created: string): Marker {
  const config = JSON.parse(draft.config.bytes.toString()) as ImageConfig;
  const manifest = JSON.parse(draft.manifest.bytes.toString()) as Manifest;
  return {
    schemaVersion: 1,
    repository: places[0]?.repository ?? '',
    tag: places[0]?.tag ?? 'latest',
    ...(places.length > 1 ? { places } : {}),
    created,
    layers: manifest.layers.map((d, i) => ({ ...d, diffId: config.rootfs.diff_ids[i] })),
    config: config.config,
    history: config.history ?? [],
  };
}

/** Where an image with this marker can be read: its places, or the one repository of older markers. */
export function markerPlaces(marker: Marker): MarkerPlace[] {
  if (marker.places?.length) return marker.places;
  return marker.repository ? [{ repository: marker.repository, tag: marker.tag }] : [];
}

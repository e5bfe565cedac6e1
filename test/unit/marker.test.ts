import { describe, expect, it } from 'vitest';
import { buildImage } from '../../src/image/build.js';
import { markerFor, markerPlaces, parseMarker } from '../../src/image/marker.js';

const layer = {
  descriptor: {
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    digest: 'sha256:' + 'a'.repeat(64),
    size: 10,
  },
  diffId: 'sha256:' + 'b'.repeat(64),
  comment: '/usr',
};
const draft = buildImage({ layers: [layer], created: '2024-01-01T00:00:00Z' });

describe('the marker', () => {
  it('names one place as older versions did, byte for byte, with no places list', () => {
    const m = markerFor(draft, [{ repository: 'r.example/a', tag: 'v1' }], '2024-01-01T00:00:00Z');
    expect(Object.keys(m)).not.toContain('places');
    expect(m).toMatchObject({ repository: 'r.example/a', tag: 'v1' });
    expect(markerPlaces(parseMarker(JSON.stringify(m)))).toEqual([{ repository: 'r.example/a', tag: 'v1' }]);
  });

  it('lists every place, the first also as repository/tag for older readers', () => {
    const places = [
      { repository: 'r.example/a', tag: 'v1' },
      { repository: 'ghcr.io/o/a', tag: 'latest' },
    ];
    const m = parseMarker(JSON.stringify(markerFor(draft, places, '2024-01-01T00:00:00Z')));
    expect(m).toMatchObject({ repository: 'r.example/a', tag: 'v1', places });
    expect(markerPlaces(m)).toEqual(places);
  });

  it('names no place for a dry run, and refuses places that are not places', () => {
    const m = markerFor(draft, [], '2024-01-01T00:00:00Z');
    expect(markerPlaces(m)).toEqual([]);
    expect(() => parseMarker(JSON.stringify({ ...m, places: [{ repository: 1 }] }))).toThrow(/not a marker/);
    expect(() => parseMarker(JSON.stringify({ ...m, places: 'r.example/a' }))).toThrow(/not a marker/);
  });
});

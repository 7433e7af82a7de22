// Where an alert page's navigate links go. A `geo:` link (RFC 5870) opens whichever maps app
// the phone has (Android asks which); iPhones have no `geo:` handler, so there is also the
// platform's own map over https, which opens its app when installed: Apple Maps on iPhone,
// iPad and Mac, 高德地图 (Amap) elsewhere. Coordinates are WGS-84, the system of the phone's
// GPS fixes that distances are measured against, and both links say so.

export interface MapsLink {
  href: string;
  /** Which map it is, for its caption: `apple` or `amap`. */
  app: "apple" | "amap";
}

/** Six decimals: about 10 cm, and no exponent notation. */
function coord(x: number): string {
  return x.toFixed(6);
}

/** `geo:39.956000,116.410000?q=39.956000,116.410000(label)`: the pin, named, in any maps app. */
export function geoHref(lat: number, lon: number, label: string): string {
  const at = `${coord(lat)},${coord(lon)}`;
  return `geo:${at}?q=${at}(${encodeURIComponent(label)})`;
}

/** Apple's devices (iPadOS says "Macintosh") get Apple Maps; the rest Amap. */
export function isApple(userAgent: string): boolean {
  return /iPhone|iPad|iPod|Macintosh/.test(userAgent);
}

/** Walking directions to the household in the platform's map. */
export function mapsLink(lat: number, lon: number, label: string, userAgent: string): MapsLink {
  const name = encodeURIComponent(label);
  if (isApple(userAgent)) {
    return {
      app: "apple",
      href: `https://maps.apple.com/?daddr=${coord(lat)},${coord(lon)}&q=${name}&dirflg=w`,
    };
  }
  return {
    app: "amap",
    href:
      `https://uri.amap.com/navigation?to=${coord(lon)},${coord(lat)},${name}` +
      `&mode=walk&coordinate=wgs84&callnative=1`,
  };
}

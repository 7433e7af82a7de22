// Vite builds two pages into dist/, which the tenwatch gateway serves: the station console
// (index.html, at /) and the patrol volunteers' installable app (app/index.html, at /app/).
// Files under public/ are copied as they are: the app's service worker must keep its fixed
// name /app/sw.js, and its manifest and icons are referenced by fixed paths.
// `npm run dev` proxies the API and the feed to a gateway on 127.0.0.1:8080.
import { defineConfig } from "vite";

// Absolute, so that the build does not depend on the directory it is started from.
const page = (p: string) => decodeURIComponent(new URL(p, import.meta.url).pathname);

export default defineConfig({
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 600,
    rollupOptions: {
      input: {
        console: page("./index.html"),
        app: page("./app/index.html"),
      },
    },
  },
  server: {
    host: "127.0.0.1",
    proxy: {
      "/api": { target: "http://127.0.0.1:8080", ws: true },
    },
  },
});

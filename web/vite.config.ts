// Vite builds the console into dist/, which the tenwatch gateway serves.
// `npm run dev` proxies the API and the feed to a gateway on 127.0.0.1:8080.
import { defineConfig } from "vite";

export default defineConfig({
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 600,
  },
  server: {
    host: "127.0.0.1",
    proxy: {
      "/api": { target: "http://127.0.0.1:8080", ws: true },
    },
  },
});

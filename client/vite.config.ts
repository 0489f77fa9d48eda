import { defineConfig } from 'vite'

// The build lands in the Python package (collab/web), which `collab serve`
// serves at / and /annotations/{id}; a wheel carries it, so installing a
// release needs no Node. Hashed asset names: served as immutable.
export default defineConfig({
  build: {
    outDir: '../collab/web',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
  },
  server: {
    proxy: {
      '/api': 'http://127.0.0.1:8000',
      '/sync': { target: 'ws://127.0.0.1:8000', ws: true },
      '/data': { target: 'ws://127.0.0.1:8000', ws: true },
      '/replay': { target: 'ws://127.0.0.1:8000', ws: true },
    },
  },
})

// Placeholder entry (replaced by the UI): installs the API and shows that the app answers.
import { installApi } from './api-client.js';

const api = installApi();
const app = document.getElementById('app')!;
app.textContent = 'Sliceform: connecting…';
api
  .systemInfo()
  .then((info) => {
    app.textContent = `Sliceform ${info.version} (${info.shell}) — engine: ${info.engine?.name ?? info.engineError ?? 'none'}`;
    app.dataset.ready = '1';
  })
  .catch((e: Error) => {
    app.textContent = `Sliceform: ${e.message}`;
  });

import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { el } from './dom';
import { artifactView, formatBytes } from './logic';
import { artifactURL } from './request';

const MAX_INLINE = 5_000_000; // bytes shown in a tab; bigger artifacts stay downloads

/**
 * One artifact of a run in a main-area tab: an image inline, text in a <pre> (as text),
 * HTML only inside an iframe sandboxed with no permissions at all (no scripts, no
 * same-origin), so a report logged by a run can never act in JupyterLab.
 */
export class ArtifactView extends Widget {
  constructor(
    readonly runId: number,
    readonly name: string,
    private readonly size: number | null
  ) {
    super();
    this.addClass('jp-mlops-artifact-view');
    this.title.label = `${name.split('/').pop()} (run ${runId})`;
    this.title.caption = `run ${runId}: ${name}`;
    this.title.closable = true;
    void this.load();
  }

  dispose(): void {
    if (this.objectURL) {
      URL.revokeObjectURL(this.objectURL);
    }
    super.dispose();
  }

  private async load(): Promise<void> {
    const url = artifactURL(this.runId, this.name);
    const header = el('h3', { text: `${this.name} — run ${this.runId}${this.size === null ? '' : `, ${formatBytes(this.size)}`}` });
    const download = el('a', {
      text: 'Download',
      attrs: { href: url, download: this.name.split('/').pop() ?? 'artifact' }
    });
    const view = artifactView(this.name);
    if (!view || (this.size ?? 0) > MAX_INLINE) {
      this.node.replaceChildren(header, el('p', { text: 'Not shown here: ' }), download);
      return;
    }
    try {
      const settings = ServerConnection.makeSettings();
      const response = await ServerConnection.makeRequest(url, {}, settings);
      if (!response.ok) {
        const body = await response.text();
        let message = body;
        try {
          message = JSON.parse(body).message ?? body;
        } catch {
          // not JSON: keep the text
        }
        throw new Error(message);
      }
      let shown: HTMLElement;
      if (view.kind === 'image') {
        const blob = new Blob([await response.arrayBuffer()], { type: view.mime });
        shown = el('img', { cls: 'jp-mlops-artifact-image', attrs: { src: await this.imageSource(blob), alt: this.name } });
      } else if (view.kind === 'html') {
        const frame = el('iframe', { cls: 'jp-mlops-artifact-html', attrs: { sandbox: '', title: this.name } });
        frame.srcdoc = await response.text();
        shown = frame;
      } else {
        shown = el('pre', { cls: 'jp-mlops-artifact-text', text: await response.text() });
      }
      this.node.replaceChildren(el('div', { children: [header, download] }), shown);
    } catch (error) {
      this.node.replaceChildren(header, el('div', { cls: 'jp-mlops-error', text: (error as Error).message }));
    }
  }

  /**
   * Where the <img> reads `blob` from. A blob: URL has JupyterLab's origin: an SVG
   * opened from it in a tab of its own ("Open image in new tab") would run its scripts
   * there, with the user's Jupyter session. An SVG is therefore given as a data: URL,
   * whose document has an opaque origin (and which Chromium will not open as a page
   * from a link); raster images, which cannot hold scripts, keep the cheaper blob: URL.
   */
  private async imageSource(blob: Blob): Promise<string> {
    if (blob.type === 'image/svg+xml') {
      return await new Promise<string>((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result as string);
        reader.onerror = () => reject(reader.error ?? new Error('could not read the SVG'));
        reader.readAsDataURL(blob);
      });
    }
    this.objectURL = URL.createObjectURL(blob);
    return this.objectURL;
  }

  private objectURL: string | null = null;
}

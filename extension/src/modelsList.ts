import { Widget } from '@lumino/widgets';

import { el } from './dom';
import { formatTime, modelSnippet } from './logic';
import { requestAPI } from './request';
import { ISnippetActions, snippetButtons } from './snippets';

interface IModels {
  models: {
    name: string;
    versions: { version: number; run_id: number | null; created_at: number; aliases: string[] }[];
  }[];
  dashboard_url: string | null;
}

/**
 * Model names, versions and aliases, each version with "Copy as code"; a link to the
 * approval dashboard if configured.
 */
export class ModelsList extends Widget {
  constructor(private readonly snippets: ISnippetActions) {
    super();
    this.addClass('jp-mlops-models');
  }

  async refresh(): Promise<void> {
    try {
      const data = await requestAPI<IModels>('models');
      const parts: Node[] = [];
      if (data.dashboard_url && /^https?:\/\//.test(data.dashboard_url)) {
        parts.push(
          el('p', {
            children: [
              el('a', {
                text: 'Open the approval dashboard',
                attrs: { href: data.dashboard_url, target: '_blank', rel: 'noopener noreferrer' }
              })
            ]
          })
        );
      }
      if (!data.models.length) {
        parts.push(el('p', { text: 'No models yet: log one with %mlops model.' }));
      }
      for (const model of data.models) {
        parts.push(el('h4', { text: model.name }));
        const versions = el('ul', {
          cls: 'jp-mlops-versions',
          children: model.versions.map(v =>
            el('li', {
              attrs: { 'data-version': String(v.version) },
              children: [
                el('div', {
                  text: [
                    `v${v.version}`,
                    v.aliases.join(', '),
                    v.run_id === null ? '' : `run ${v.run_id}`,
                    formatTime(v.created_at)
                  ]
                    .filter(Boolean)
                    .join(' · ')
                }),
                snippetButtons(modelSnippet(model.name, v.version, v.aliases), this.snippets)
              ]
            })
          )
        });
        parts.push(versions);
      }
      this.node.replaceChildren(...parts);
    } catch (error) {
      this.node.replaceChildren(el('div', { cls: 'jp-mlops-error', text: (error as Error).message }));
    }
  }
}

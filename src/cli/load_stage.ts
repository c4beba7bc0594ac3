import { ImagenError } from '../engine/errors.js';
import { checkStageUNet } from '../pipelines/img2img.js';
import { type LoadedPipeline, loadPipelineFolder } from '../platform/node/pipeline_folder.js';

/**
 * Load a pipeline folder for a role and check it fits: the UNet's shape decides (a stage-II UNet
 * has in_channels 6 and a class embedding), and the folder's missing parts are named with the flag.
 */
export async function loadStage(
  dir: string,
  want: 'base' | 'sr',
  flag: string,
  fp16: boolean,
  say: (m: string) => void,
): Promise<LoadedPipeline> {
  let p: LoadedPipeline;
  try {
    p = await loadPipelineFolder(dir, fp16 ? { variant: 'fp16' } : {});
  } catch (e) {
    if (e instanceof ImagenError && e.code === 'NOT_FOUND' && e.message.includes('missing')) {
      throw new ImagenError(
        'NOT_FOUND',
        `${flag} ${e.message}. A diffusers IF ${want === 'base' ? 'stage-I' : 'stage-II'} folder has model_index.json, ` +
          `unet/, scheduler/${want === 'sr' ? ', image_noising_scheduler/' : ', text_encoder/, tokenizer/'}.`,
        { cause: e },
      );
    }
    throw e;
  }
  checkStageUNet(p.unet.config, want, `${flag} ${dir}`);
  if (want === 'sr' && !p.imageNoisingSchedule) {
    throw new ImagenError('NOT_FOUND', `${flag} ${dir}: pipeline folder is missing image_noising_scheduler`);
  }
  if (p.notApplied.length)
    say(`note: ${p.dir}: ${p.notApplied.join(', ')} present but not applied by imagen-ts`);
  return p;
}

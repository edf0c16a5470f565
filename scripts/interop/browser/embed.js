/**
 * Embeds images in the browser with a selfsup backbone exported by
 * `selfsup export <run> --format tfjs --out web/model`. Plain ES module, no
 * build step; `tf` is the TensorFlow.js module (the global `tf` of tf.min.js in a
 * page, or `import * as tf from '@tensorflow/tfjs'`).
 *
 *   const embedder = await loadEmbedder(tf, 'model/model.json');
 *   const vector = embedder.embedRgba(imageData.data, imageData.width, imageData.height); // Float32Array [D]
 */

/** Loads the LayersModel and its selfsup manifest (input size, channels, mean/std). */
export async function loadEmbedder(tf, modelUrl) {
  const model = await tf.loadLayersModel(modelUrl);
  const manifest = model.getUserDefinedMetadata()?.selfsup;
  if (!manifest) throw new Error(`${modelUrl}: no selfsup manifest in userDefinedMetadata (not a selfsup export?)`);
  const size = manifest.inputSize ?? (manifest.stem === 'small' ? 32 : 224);
  const channels = manifest.inputChannels;
  const { mean, std } = manifest;

  /**
   * RGBA pixels (as in ImageData) of a size x size image -> normalised input [1, size, size, C].
   * One channel: the red channel of a grey image (R = G = B), else BT.709 luma.
   */
  function toInput(rgba, width, height) {
    if (width !== size || height !== size) {
      throw new Error(
        `expected a ${size}x${size} image (draw it into a canvas of that size), received ${width}x${height}`,
      );
    }
    const data = new Float32Array(size * size * channels);
    for (let p = 0; p < size * size; p++) {
      const r = rgba[4 * p];
      const g = rgba[4 * p + 1];
      const b = rgba[4 * p + 2];
      if (channels === 1) {
        const grey = r === g && g === b ? r : Math.round(0.2126 * r + 0.7152 * g + 0.0722 * b);
        data[p] = (grey / 255 - mean[0]) / std[0];
      } else {
        data[3 * p] = (r / 255 - mean[0]) / std[0];
        data[3 * p + 1] = (g / 255 - mean[1]) / std[1];
        data[3 * p + 2] = (b / 255 - mean[2]) / std[2];
      }
    }
    return tf.tensor4d(data, [1, size, size, channels]);
  }

  return {
    model,
    manifest,
    /** Input side in px: draw images into a canvas of this size (center-cropped) before embedding. */
    size,
    /** Pooled features [D] of one image given as RGBA pixels. */
    embedRgba(rgba, width, height) {
      return tf.tidy(() =>
        model
          .predict(toInput(rgba, width, height))
          .dataSync()
          .slice(),
      );
    },
    dispose() {
      model.dispose();
    },
  };
}

/** Cosine similarity of two vectors. */
export function cosineSimilarity(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb || 1);
}

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GradTTSWeb, tf } from '/work/main/export/web/src/synth.js';
const dir=process.argv[3];
const io={json: async p=>JSON.parse(readFileSync(join(dir,p),'utf8')), bytes: async p=>{const b=readFileSync(join(dir,p));return b.buffer.slice(b.byteOffset,b.byteOffset+b.byteLength);}};
await tf.setBackend(process.argv[2]||'cpu');
const tts = await GradTTSWeb.load(io);
const T=Number(process.argv[4]);
const xt=tf.randomNormal([1,T,80]), mu=tf.randomNormal([1,T,80]), mask=tf.ones([1,T,1]);
const inputs={xt,mu,mask,t:tf.tensor1d([0.5]),h:tf.scalar(0.1)};
tts.decoderStep.execute(inputs,'xt_next');
const t0=Date.now();
const prof = await tf.profile(() => tts.decoderStep.execute(inputs,'xt_next'));
console.log('step ms', Date.now()-t0);const agg={};
for (const k of prof.kernels){ agg[k.name]=(agg[k.name]||0)+ (await k.kernelTimeMs); }
console.log(Object.entries(agg).sort((a,b)=>b[1]-a[1]).slice(0,8));

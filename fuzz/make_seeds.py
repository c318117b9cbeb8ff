"""Writes small seed files for the gguf_parse fuzz target with the PyPI `gguf` package
(an independent GGUF writer): python3 make_seeds.py seeds/  (needs `pip install gguf numpy`)."""
import sys, os
import numpy as np
from gguf import GGUFWriter, GGMLQuantizationType as Q

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

def write(name, fill, arch="llama"):
    w = GGUFWriter(os.path.join(out, name), arch)
    fill(w)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()

def small(w):
    w.add_uint32("llama.block_count", 2); w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_bool("tok.flag", True); w.add_string("general.name", "seed")
    w.add_array("tokenizer.ggml.tokens", ["a", "b", "<s>"])
    w.add_array("tokenizer.ggml.scores", [0.5, -1.0, 2.0])
    w.add_tensor("w", np.arange(64, dtype=np.float32).reshape(2, 32))
    w.add_tensor("v", np.ones(7, dtype=np.float16))

def every(w):
    w.add_uint8("u8", 1); w.add_int8("i8", -1); w.add_uint16("u16", 2); w.add_int16("i16", -2)
    w.add_uint64("u64", 3); w.add_int64("i64", -3); w.add_float64("f64", 1.25); w.add_int32("i32", -4)
    w.add_array("arr_i32", [1, -2, 3]); w.add_array("arr_empty", [])
    w.add_array("arr_nested", [[1, 2], [3]])
    w.add_tensor("q", np.zeros((4, 34), dtype=np.uint8), raw_dtype=Q.Q8_0)

def aligned(w):
    w.add_custom_alignment(64)
    w.add_tensor("a", np.ones((3, 5), dtype=np.float32))
    w.add_tensor("b", np.zeros((2, 40), dtype=np.uint8), raw_dtype=Q.Q4_1)

write("small.gguf", small)
write("every_type.gguf", every)
write("aligned64.gguf", aligned)
write("empty.gguf", lambda w: None)

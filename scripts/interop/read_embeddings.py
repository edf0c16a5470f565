"""Read the Arrow files of `selfsup embed` with pandas, polars and DuckDB.

    pip install pyarrow pandas polars duckdb      # any subset; each reader is tried if installed
    python3 scripts/interop/read_embeddings.py runs/demo/embed

Prints the shape of the embeddings read by each library, checks that they agree,
and lists the most similar near-duplicate pairs and the top outliers. Exit code 1
when a library reads different numbers or nothing could be read.
"""
import os
import sys

folder = sys.argv[1] if len(sys.argv) > 1 else "runs/demo/embed"
embeddings = os.path.join(folder, "embeddings.arrow")
matrices = {}

try:
    import numpy as np
    import pandas as pd

    frame = pd.read_feather(embeddings)  # Arrow IPC file = Feather v2
    matrices["pandas"] = np.stack(frame["vector"].to_numpy())
    print(f"pandas: {len(frame)} rows, columns {list(frame.columns)}, vectors {matrices['pandas'].shape}")
    duplicates = pd.read_feather(os.path.join(folder, "near-duplicates.arrow"))
    outliers = pd.read_feather(os.path.join(folder, "outliers.arrow"))
    print(f"  near-duplicate pairs: {len(duplicates)}; most similar:")
    print(duplicates.head(3)[["path_a", "path_b", "similarity"]].to_string(index=False))
    print("  top outliers:")
    print(outliers.head(3)[["rank", "path", "mean_knn_similarity"]].to_string(index=False))
except ImportError as e:
    print(f"pandas: not installed ({e.name})")

try:
    import numpy as np
    import polars as pl

    frame = pl.read_ipc(embeddings)
    matrices["polars"] = np.stack(frame["vector"].to_numpy())
    print(f"polars: {frame.height} rows, vector dtype {frame.schema['vector']}")
except ImportError as e:
    print(f"polars: not installed ({e.name})")

try:
    import duckdb
    import numpy as np

    import pyarrow.feather as feather

    embeddings_table = feather.read_table(embeddings)  # DuckDB queries an Arrow table in place, by variable name
    rows = duckdb.sql('SELECT path, vector FROM embeddings_table ORDER BY "index"').fetchall()
    matrices["duckdb"] = np.array([r[1] for r in rows], dtype=np.float32)
    count = duckdb.sql("SELECT count(*), count(DISTINCT class) FROM embeddings_table").fetchall()[0]
    print(f"duckdb: {count[0]} rows, {count[1]} classes")
except ImportError as e:
    print(f"duckdb: not installed ({e.name})")

if not matrices:
    sys.exit("no reader available: pip install pyarrow pandas (or polars, or duckdb)")
names = list(matrices)
for name in names[1:]:
    if matrices[name].shape != matrices[names[0]].shape or not (matrices[name] == matrices[names[0]]).all():
        sys.exit(f"{name} and {names[0]} disagree")
print(f"OK: {', '.join(names)} read the same {matrices[names[0]].shape[0]} x {matrices[names[0]].shape[1]} float32 matrix")

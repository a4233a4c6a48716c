"""Image datasets in the CLIP-benchmark WebDataset layout (DESIGN §3), read in a fixed order."""

from pysim.data.wds import (
                            ShardIndex,
                            SplitReader,
                            build_loader,
                            index_split,
                            list_shards,
                            split_dir,
)

__all__ = ["ShardIndex", "SplitReader", "build_loader", "index_split", "list_shards", "split_dir"]

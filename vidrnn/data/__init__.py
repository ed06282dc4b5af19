"""Dataset indexes (UCF101, class folders, tracking sequences) and the demo data generator."""

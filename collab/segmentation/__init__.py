"""The segmentation document (volume annotation). Its model is specified by
the volume-annotation issue (docs/schema.md); for now only its kind."""

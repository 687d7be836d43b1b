"""Images in: reading and writing files, finding the images of a folder or data set."""

from nsad.data.io import IMAGE_SUFFIXES, list_images, normal_image_paths, read_image, write_image

__all__ = ["IMAGE_SUFFIXES", "list_images", "normal_image_paths", "read_image", "write_image"]

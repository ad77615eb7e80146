/*
 * vigie — what the agent reads from a libvirt domain's XML description.
 *
 * From virDomainGetXMLDesc the agent needs the domain's identity (name,
 * UUID, and the tenant it belongs to) and its device lists (disk and
 * interface target names, which the per-domain fallback calls need).
 * Identity, in order of precedence:
 *   1. OpenStack Nova metadata, namespace
 *      http://openstack.org/xmlns/libvirt/nova/1.1 (any .../nova/<version>):
 *      <nova:instance><nova:name>, <nova:flavor name=..> with <nova:vcpus>,
 *      <nova:memory> (MiB), <nova:disk> (GiB), and
 *      <nova:owner><nova:user uuid=..>name</nova:user>
 *                  <nova:project uuid=..>name</nova:project></nova:owner>.
 *      project/user are the uuid attributes (the ids OpenStack APIs use),
 *      project_name/user_name the element texts; without a uuid the text
 *      is the id too.
 *   2. vigie's own namespace http://vigie.dev/xmlns/1:
 *      <vigie:owner project=".." user=".." flavor=".."/>, set on any
 *      domain with
 *        virsh metadata DOM http://vigie.dev/xmlns/1 --key vigie \
 *          --set '<owner project="p" user="u" flavor="f"/>'
 *   3. neither: all identity fields NULL (the agent reports "default").
 *
 * The parser is a small non-validating XML reader written for libvirt's
 * output (well-formed, UTF-8): elements, attributes, namespaces, comments,
 * processing instructions, CDATA and the predefined/numeric entities.
 * It never reads past the end of its input and rejects malformed input.
 * Thread-safe (no shared state).
 */
#ifndef VIGIE_AGENT_DOMXML_H
#define VIGIE_AGENT_DOMXML_H

#include <stddef.h>

#define VG_NOVA_NS_PREFIX "http://openstack.org/xmlns/libvirt/nova/"
#define VG_NOVA_NS "http://openstack.org/xmlns/libvirt/nova/1.1"
#define VG_VIGIE_NS "http://vigie.dev/xmlns/1"

enum vg_identity_source {
	VG_IDENT_NONE = 0,
	VG_IDENT_NOVA = 1,
	VG_IDENT_VIGIE = 2,
};

/* A block device with a target dev. Only device='disk' or 'lun' is
 * reported (reported = 1); cdrom and floppy are listed with reported = 0
 * so that the bulk stats naming them is not mistaken for a hot-plug.
 * source is the file, block device, network name or volume, or NULL
 * (empty drive). */
struct vg_domxml_disk {
	char *dev;    /* target dev: "vda" */
	char *source; /* "/var/lib/libvirt/images/x.qcow2", "/dev/vg/lv" */
	char *bus;    /* "virtio", may be NULL */
	int reported; /* 1 for disk/lun, 0 for cdrom/floppy */
};

/* An interface with a <target dev=..> (others have no host-side stats). */
struct vg_domxml_nic {
	char *dev;  /* "tap1", "vnet0" */
	char *mac;  /* may be NULL */
	char *type; /* "network", "bridge", "ethernet"..., may be NULL */
};

/* Every string is malloc'd and owned by the struct (NULL when absent). */
struct vg_domxml {
	char *name, *uuid;
	char *display_name; /* nova:name */
	char *project, *project_name, *user, *user_name, *flavor;
	long flavor_vcpus, flavor_memory_mb, flavor_disk_gb; /* -1: unknown */
	int ident;                                           /* enum vg_identity_source */
	/* <domain id=..>: the running incarnation the XML describes; -1 when
	 * absent (the inactive definition) or not a number in [0, INT_MAX]. */
	int id;
	size_t ndisks, nnics;
	struct vg_domxml_disk *disks;
	struct vg_domxml_nic *nics;
};

/* Parse a domain XML document into *out (overwritten, not freed first).
 * 0, -EBADMSG (malformed XML, root is not <domain>), -ENOMEM. On error
 * *out is left cleared (nothing to free). */
int vg_domxml_parse(const char *xml, struct vg_domxml *out);

/* Free everything *d owns and zero it. Accepts NULL. */
void vg_domxml_clear(struct vg_domxml *d);

/* The disk / nic with this target dev, or NULL. */
const struct vg_domxml_disk *vg_domxml_disk(const struct vg_domxml *d,
					    const char *dev);
/* 1 if the domain has a disk (reported or not) / nic with this target
 * dev, else 0. */
int vg_domxml_has_disk(const struct vg_domxml *d, const char *dev);
int vg_domxml_has_nic(const struct vg_domxml *d, const char *dev);

#endif

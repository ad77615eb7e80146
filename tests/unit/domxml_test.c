/*
 * domxml_test.c — identity (Nova, vigie, none) and device lists from a
 * domain XML; namespaces by URI, entities, and malformed documents.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/domxml.h"

static const char nova_xml[] =
	"<domain type='kvm' id='7'>\n"
	"  <name>instance-0000002a</name>\n"
	"  <uuid>aaaabbbb-cccc-dddd-eeee-000000000042</uuid>\n"
	"  <metadata>\n"
	"    <nova:instance xmlns:nova=\"http://openstack.org/xmlns/libvirt/nova/1.1\">\n"
	"      <nova:package version=\"27.1.0\"/>\n"
	"      <nova:name>web &amp; api</nova:name>\n"
	"      <nova:flavor name=\"m1.small\">\n"
	"        <nova:memory>2048</nova:memory>\n"
	"        <nova:disk>20</nova:disk>\n"
	"        <nova:vcpus>2</nova:vcpus>\n"
	"      </nova:flavor>\n"
	"      <nova:owner>\n"
	"        <nova:user uuid=\"u-1\">alice</nova:user>\n"
	"        <nova:project uuid=\"p-1\">webshop</nova:project>\n"
	"      </nova:owner>\n"
	"    </nova:instance>\n"
	"  </metadata>\n"
	"  <devices>\n"
	"    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
	"    <disk type='file' device='disk'>\n"
	"      <driver name='qemu' type='qcow2'/>\n"
	"      <source file='/var/lib/nova/instances/x/disk'/>\n"
	"      <target dev='vda' bus='virtio'/>\n"
	"    </disk>\n"
	"    <disk type='block' device='disk'>\n"
	"      <source dev='/dev/vg0/vol1'/>\n"
	"      <target dev='vdb' bus='virtio'/>\n"
	"    </disk>\n"
	"    <disk type='file' device='cdrom'>\n"
	"      <target dev='hdc' bus='ide'/>\n"
	"    </disk>\n"
	"    <interface type='bridge'>\n"
	"      <mac address='fa:16:3e:00:00:01'/>\n"
	"      <source bridge='br0'/>\n"
	"      <target dev='tap1234'/>\n"
	"    </interface>\n"
	"    <interface type='user'>\n"
	"      <mac address='52:54:00:00:00:09'/>\n"
	"    </interface>\n"
	"  </devices>\n"
	"</domain>\n";

static void test_nova(void **state)
{
	struct vg_domxml d;

	assert_int_equal(vg_domxml_parse(nova_xml, &d), 0);
	assert_string_equal(d.name, "instance-0000002a");
	assert_string_equal(d.uuid, "aaaabbbb-cccc-dddd-eeee-000000000042");
	assert_int_equal(d.ident, VG_IDENT_NOVA);
	assert_string_equal(d.display_name, "web & api");
	assert_string_equal(d.project, "p-1");
	assert_string_equal(d.project_name, "webshop");
	assert_string_equal(d.user, "u-1");
	assert_string_equal(d.user_name, "alice");
	assert_string_equal(d.flavor, "m1.small");
	assert_int_equal(d.flavor_vcpus, 2);
	assert_int_equal(d.flavor_memory_mb, 2048);
	assert_int_equal(d.flavor_disk_gb, 20);
	/* the cdrom is listed but not reported; an interface without a
	 * target is skipped */
	assert_int_equal(d.ndisks, 3);
	assert_true(d.disks[0].reported);
	assert_true(d.disks[1].reported);
	assert_string_equal(d.disks[2].dev, "hdc");
	assert_false(d.disks[2].reported);
	assert_string_equal(d.disks[0].dev, "vda");
	assert_string_equal(d.disks[0].source, "/var/lib/nova/instances/x/disk");
	assert_string_equal(d.disks[0].bus, "virtio");
	assert_string_equal(d.disks[1].dev, "vdb");
	assert_string_equal(d.disks[1].source, "/dev/vg0/vol1");
	assert_int_equal(d.nnics, 1);
	assert_string_equal(d.nics[0].dev, "tap1234");
	assert_string_equal(d.nics[0].mac, "fa:16:3e:00:00:01");
	assert_string_equal(d.nics[0].type, "bridge");
	assert_true(vg_domxml_has_disk(&d, "vdb"));
	assert_true(vg_domxml_has_disk(&d, "hdc"));
	assert_false(vg_domxml_has_disk(&d, "sda"));
	assert_ptr_equal(vg_domxml_disk(&d, "vdb"), &d.disks[1]);
	assert_null(vg_domxml_disk(&d, "sdz"));
	assert_true(vg_domxml_has_nic(&d, "tap1234"));
	assert_false(vg_domxml_has_nic(&d, "tap9"));
	vg_domxml_clear(&d);
	assert_null(d.name);
	vg_domxml_clear(NULL);
}

static void test_nova_other_prefix_and_no_uuid(void **state)
{
	/* Matching is by namespace URI: any prefix, or a default namespace. */
	const char *xml =
		"<domain><name>d</name><metadata>"
		"<instance xmlns='http://openstack.org/xmlns/libvirt/nova/1.1'>"
		"<flavor name='tiny'><vcpus>1</vcpus></flavor>"
		"<owner><user>bob</user><project>research</project></owner>"
		"</instance></metadata></domain>";
	struct vg_domxml d;

	assert_int_equal(vg_domxml_parse(xml, &d), 0);
	assert_int_equal(d.ident, VG_IDENT_NOVA);
	/* no uuid attribute: the name is the id */
	assert_string_equal(d.project, "research");
	assert_string_equal(d.user, "bob");
	assert_string_equal(d.flavor, "tiny");
	assert_int_equal(d.flavor_vcpus, 1);
	assert_int_equal(d.flavor_memory_mb, -1);
	vg_domxml_clear(&d);

	/* the right local names in a foreign namespace are not Nova */
	xml = "<domain><metadata><x:instance xmlns:x='http://example.com/nova'>"
	      "<x:owner><x:project uuid='p'>p</x:project></x:owner>"
	      "</x:instance></metadata></domain>";
	assert_int_equal(vg_domxml_parse(xml, &d), 0);
	assert_int_equal(d.ident, VG_IDENT_NONE);
	assert_null(d.project);
	vg_domxml_clear(&d);
}

static void test_vigie_and_none(void **state)
{
	const char *xml =
		"<domain><name>db1</name><metadata>"
		"<vg:owner xmlns:vg=\"http://vigie.dev/xmlns/1\" project=\"analytics\" "
		"user=\"bob\" flavor=\"db.large\"/></metadata></domain>";
	struct vg_domxml d;

	assert_int_equal(vg_domxml_parse(xml, &d), 0);
	assert_int_equal(d.ident, VG_IDENT_VIGIE);
	assert_string_equal(d.project, "analytics");
	assert_string_equal(d.user, "bob");
	assert_string_equal(d.flavor, "db.large");
	vg_domxml_clear(&d);

	/* Nova wins over vigie when both are present */
	xml = "<domain><metadata>"
	      "<vg:owner xmlns:vg='http://vigie.dev/xmlns/1' project='x'/>"
	      "<nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>"
	      "<nova:owner><nova:project uuid='p9'>n</nova:project></nova:owner>"
	      "</nova:instance></metadata></domain>";
	assert_int_equal(vg_domxml_parse(xml, &d), 0);
	assert_int_equal(d.ident, VG_IDENT_NOVA);
	assert_string_equal(d.project, "p9");
	vg_domxml_clear(&d);

	assert_int_equal(vg_domxml_parse("<?xml version='1.0'?>\n<!-- c -->"
					 "<domain type='test'><name>x</name></domain>\n",
					 &d),
			 0);
	assert_int_equal(d.ident, VG_IDENT_NONE);
	assert_null(d.project);
	assert_null(d.user);
	assert_null(d.flavor);
	assert_int_equal(d.ndisks, 0);
	vg_domxml_clear(&d);
}

static void test_entities(void **state)
{
	struct vg_domxml d;

	assert_int_equal(vg_domxml_parse("<domain><name>a&lt;b&gt;&quot;&apos;&#65;&#x42;&#233;</name>"
					 "</domain>",
					 &d),
			 0);
	assert_string_equal(d.name, "a<b>\"'AB\xc3\xa9");
	vg_domxml_clear(&d);
	assert_int_equal(vg_domxml_parse("<domain><name><![CDATA[x]]></name></domain>", &d), 0);
	vg_domxml_clear(&d);
}

/* <domain id=..>: the running incarnation the XML describes (libvirt
 * writes it on the live XML only); anything but a number is "none". */
static void test_domain_id(void **state)
{
	const struct {
		const char *xml;
		int id;
	} c[] = {
		{"<domain type='kvm' id='7'><name>a</name></domain>", 7},
		{"<domain type='kvm' id='0'/>", 0},
		{"<domain type='kvm'><name>a</name></domain>", -1},
		{"<domain id=''/>", -1},
		{"<domain id='-3'/>", -1},
		{"<domain id='12x'/>", -1},
		{"<domain id='99999999999'/>", -1},
		{"<domain><x id='5'/></domain>", -1},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct vg_domxml d;
		assert_int_equal(vg_domxml_parse(c[i].xml, &d), 0);
		if (d.id != c[i].id)
			fail_msg("case %zu (%s): id %d, want %d", i, c[i].xml, d.id, c[i].id);
		vg_domxml_clear(&d);
		assert_int_equal(d.id, -1);
	}
}

static void test_malformed(void **state)
{
	const char *bad[] = {
		"",
		"not xml",
		"<domain>",
		"<domain><name>x</domain>",
		"<domain><name>x</name></domain><domain/>",
		"<notdomain/>",
		"<domain><name>&bogus;</name></domain>",
		"<domain><name>&#0;</name></domain>",
		"<domain><name>&#x110000;</name></domain>",
		"<domain><name>&amp</name></domain>",
		"<domain a='1></domain>",
		"<domain a=1></domain>",
		"<domain><p:x/></domain>",
		"<domain><!-- open</domain>",
		"<domain>x</domain>trailing",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vg_domxml d;
		int rc = vg_domxml_parse(bad[i], &d);
		if (rc != -EBADMSG)
			fail_msg("case %zu (%s): rc %d", i, bad[i], rc);
		assert_null(d.name);
	}
	/* deep nesting is bounded */
	char deep[64 * 7 + 64 * 8 + 32] = "<domain>";
	for (int i = 0; i < 64; i++)
		strcat(deep, "<a>");
	for (int i = 0; i < 64; i++)
		strcat(deep, "</a>");
	strcat(deep, "</domain>");
	struct vg_domxml d;
	assert_int_equal(vg_domxml_parse(deep, &d), -EBADMSG);
	assert_int_equal(vg_domxml_parse(NULL, &d), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nova),
		cmocka_unit_test(test_nova_other_prefix_and_no_uuid),
		cmocka_unit_test(test_vigie_and_none),
		cmocka_unit_test(test_entities),
		cmocka_unit_test(test_domain_id),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

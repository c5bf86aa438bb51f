<?xml version="1.0"?>
<!--
  ra2refentry.xsl: OCF resource agent meta-data to a DocBook refentry, which DocBook XSL's
  manpages stylesheet turns into ocf_<provider>_<agent>(7). The same pipeline resource-agents
  uses for its own man pages, written afresh for cloudha's meta-data.
  Copyright (C) 2026 cloudha contributors. License: GPL-2.0-or-later.

  Parameters: provider (e.g. cloudha), source (e.g. "cloudha-agents 0.1.0"), date (YYYY-MM-DD).
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="xml" indent="yes" encoding="UTF-8"/>

  <xsl:param name="provider" select="'cloudha'"/>
  <xsl:param name="source" select="'cloudha'"/>
  <xsl:param name="date" select="''"/>

  <xsl:variable name="agent" select="/resource-agent/@name"/>
  <xsl:variable name="title" select="concat('ocf_', $provider, '_', $agent)"/>

  <xsl:template match="/">
    <xsl:if test="not(/resource-agent/@name)">
      <xsl:message terminate="yes">ra2refentry: the input is not OCF meta-data (no resource-agent/@name)</xsl:message>
    </xsl:if>
    <xsl:apply-templates select="resource-agent"/>
  </xsl:template>

  <xsl:template match="resource-agent">
    <refentry id="{$title}">
      <info>
        <xsl:if test="$date != ''"><date><xsl:value-of select="$date"/></date></xsl:if>
        <productname><xsl:value-of select="$source"/></productname>
        <author><personname>cloudha contributors</personname><contrib>Written by the cloudha contributors, from the agent's own meta-data.</contrib></author>
      </info>
      <refmeta>
        <refentrytitle><xsl:value-of select="$title"/></refentrytitle>
        <manvolnum>7</manvolnum>
        <refmiscinfo class="source"><xsl:value-of select="$source"/></refmiscinfo>
        <refmiscinfo class="manual">OCF resource agents</refmiscinfo>
      </refmeta>
      <refnamediv>
        <refname><xsl:value-of select="$title"/></refname>
        <refpurpose><xsl:value-of select="normalize-space(shortdesc)"/></refpurpose>
      </refnamediv>
      <refsynopsisdiv>
        <cmdsynopsis>
          <command><xsl:value-of select="$agent"/></command>
          <group choice="req">
            <xsl:for-each select="actions/action[not(@name = preceding-sibling::action/@name)]">
              <arg choice="plain"><xsl:value-of select="@name"/></arg>
            </xsl:for-each>
          </group>
        </cmdsynopsis>
      </refsynopsisdiv>
      <refsection>
        <title>Description</title>
        <xsl:call-template name="paragraphs">
          <xsl:with-param name="text" select="longdesc"/>
        </xsl:call-template>
        <para>
          <xsl:text>Pacemaker runs it as </xsl:text>
          <literal>/usr/lib/ocf/resource.d/<xsl:value-of select="$provider"/>/<xsl:value-of select="$agent"/></literal>
          <xsl:text> (resource class </xsl:text>
          <literal>ocf:<xsl:value-of select="$provider"/>:<xsl:value-of select="$agent"/></literal>
          <xsl:text>): the action is its only argument, the parameters arrive as environment variables </xsl:text>
          <literal>OCF_RESKEY_</literal><replaceable>name</replaceable><xsl:text>.</xsl:text>
        </para>
      </refsection>
      <refsection>
        <title>Supported parameters</title>
        <xsl:choose>
          <xsl:when test="parameters/parameter">
            <variablelist>
              <xsl:apply-templates select="parameters/parameter"/>
            </variablelist>
          </xsl:when>
          <xsl:otherwise><para>This resource agent takes no parameters.</para></xsl:otherwise>
        </xsl:choose>
      </refsection>
      <refsection>
        <title>Supported actions</title>
        <para>This resource agent supports the following actions (operations):</para>
        <variablelist>
          <xsl:apply-templates select="actions/action"/>
        </variablelist>
      </refsection>
      <refsection>
        <title>Exit status</title>
        <para>As the OCF standard defines: 0 success (running), 1 generic error, 2 invalid
          arguments, 3 unimplemented action, 4 insufficient permissions, 5 something this node
          lacks, 6 a configuration that is wrong on every node, 7 not running, 190 running but
          degraded. On failure the last line on standard error that starts with
          <literal>ocf-exit-reason:</literal> says why; <command>crm_mon</command> shows it.</para>
      </refsection>
      <refsection>
        <title>Example crm shell</title>
        <para>An example configuration of a resource of this agent, with the <citerefentry><refentrytitle>crm</refentrytitle><manvolnum>8</manvolnum></citerefentry> shell:</para>
        <programlisting>
          <xsl:text>primitive p_</xsl:text><xsl:value-of select="$agent"/>
          <xsl:text> ocf:</xsl:text><xsl:value-of select="$provider"/>:<xsl:value-of select="$agent"/>
          <xsl:text> \&#10;</xsl:text>
          <xsl:if test="$example-params">
            <xsl:text>  params \&#10;</xsl:text>
            <xsl:for-each select="$example-params">
              <xsl:text>  </xsl:text><xsl:value-of select="@name"/>=<xsl:call-template name="placeholder"/>
              <xsl:text> \&#10;</xsl:text>
            </xsl:for-each>
          </xsl:if>
          <xsl:for-each select="actions/action[@name = 'monitor' and @interval]">
            <xsl:text>  op monitor timeout="</xsl:text><xsl:value-of select="@timeout"/>
            <xsl:text>" interval="</xsl:text><xsl:value-of select="@interval"/><xsl:text>"</xsl:text>
            <xsl:if test="@depth"> depth="<xsl:value-of select="@depth"/>"</xsl:if>
            <xsl:if test="position() != last()"><xsl:text> \&#10;</xsl:text></xsl:if>
          </xsl:for-each>
        </programlisting>
      </refsection>
      <refsection>
        <title>Example pcs</title>
        <para>The same with <citerefentry><refentrytitle>pcs</refentrytitle><manvolnum>8</manvolnum></citerefentry>:</para>
        <programlisting>
          <xsl:text>pcs resource create p_</xsl:text><xsl:value-of select="$agent"/>
          <xsl:text> ocf:</xsl:text><xsl:value-of select="$provider"/>:<xsl:value-of select="$agent"/>
          <xsl:text> \&#10;</xsl:text>
          <xsl:for-each select="$example-params">
            <xsl:text>  </xsl:text><xsl:value-of select="@name"/>=<xsl:call-template name="placeholder"/>
            <xsl:text> \&#10;</xsl:text>
          </xsl:for-each>
          <xsl:for-each select="actions/action[@name = 'monitor' and @interval]">
            <xsl:text>  op monitor timeout="</xsl:text><xsl:value-of select="@timeout"/>
            <xsl:text>" interval="</xsl:text><xsl:value-of select="@interval"/><xsl:text>"</xsl:text>
            <xsl:if test="@depth"> OCF_CHECK_LEVEL="<xsl:value-of select="@depth"/>"</xsl:if>
            <xsl:if test="position() != last()"><xsl:text> \&#10;</xsl:text></xsl:if>
          </xsl:for-each>
        </programlisting>
      </refsection>
      <refsection>
        <title>See also</title>
        <para>
          <citerefentry><refentrytitle>crm</refentrytitle><manvolnum>8</manvolnum></citerefentry>,
          <citerefentry><refentrytitle>pcs</refentrytitle><manvolnum>8</manvolnum></citerefentry>,
          <citerefentry><refentrytitle>crm_resource</refentrytitle><manvolnum>8</manvolnum></citerefentry>,
          <citerefentry><refentrytitle>ocf-tester</refentrytitle><manvolnum>8</manvolnum></citerefentry>,
          <literal>/usr/share/doc/cloudha-agents/</literal>
        </para>
      </refsection>
    </refentry>
  </xsl:template>

  <!-- The parameters an example must show: the required ones, and those needed under either of
       two names (cloudha-common advertises them as optional, saying "Required: set this or its
       legacy name ..." in their longdesc). -->
  <xsl:variable name="example-params" select="/resource-agent/parameters/parameter[@required = '1' or contains(longdesc, 'Required: set this')]"/>

  <xsl:template name="placeholder">
    <xsl:choose>
      <xsl:when test="content/@default">"<xsl:value-of select="content/@default"/>"</xsl:when>
      <xsl:otherwise><xsl:value-of select="content/@type"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <xsl:template match="parameter">
    <varlistentry>
      <term><option><xsl:value-of select="@name"/></option></term>
      <listitem>
        <xsl:if test="normalize-space(shortdesc) != normalize-space(longdesc)">
          <para><emphasis><xsl:value-of select="normalize-space(shortdesc)"/></emphasis></para>
        </xsl:if>
        <xsl:call-template name="paragraphs">
          <xsl:with-param name="text" select="longdesc"/>
        </xsl:call-template>
        <para>
          <xsl:text>(</xsl:text>
          <xsl:if test="@unique = '1'">unique, </xsl:if>
          <xsl:choose>
            <xsl:when test="@required = '1'">required</xsl:when>
            <xsl:otherwise>optional</xsl:otherwise>
          </xsl:choose>
          <xsl:text>, </xsl:text>
          <xsl:value-of select="content/@type"/>
          <xsl:if test="content/@default">
            <xsl:text>, default "</xsl:text><xsl:value-of select="content/@default"/><xsl:text>"</xsl:text>
          </xsl:if>
          <xsl:text>)</xsl:text>
        </para>
      </listitem>
    </varlistentry>
  </xsl:template>

  <xsl:template match="action">
    <varlistentry>
      <term><option><xsl:value-of select="@name"/></option></term>
      <listitem>
        <para>
          <xsl:choose>
            <xsl:when test="@name = 'start'">Starts the resource, returning once it is fully up. </xsl:when>
            <xsl:when test="@name = 'stop'">Stops the resource; stopping a stopped resource succeeds. </xsl:when>
            <xsl:when test="@name = 'monitor'">Checks the state of the resource on this node. </xsl:when>
            <xsl:when test="@name = 'meta-data'">Prints this agent's meta-data (for the cluster manager). </xsl:when>
            <xsl:when test="@name = 'validate-all'">Checks the parameters. </xsl:when>
            <xsl:when test="@name = 'reload'">Reloads the service's own configuration. </xsl:when>
            <xsl:when test="@name = 'notify'">Accepts clone notifications. </xsl:when>
          </xsl:choose>
          <xsl:text>Suggested minimum timeout: </xsl:text><xsl:value-of select="@timeout"/><xsl:text>.</xsl:text>
          <xsl:if test="@interval">
            <xsl:text> Suggested interval: </xsl:text><xsl:value-of select="@interval"/><xsl:text>.</xsl:text>
          </xsl:if>
          <xsl:if test="@depth">
            <xsl:text> Depth (OCF_CHECK_LEVEL): </xsl:text><xsl:value-of select="@depth"/><xsl:text>.</xsl:text>
          </xsl:if>
        </para>
      </listitem>
    </varlistentry>
  </xsl:template>

  <!-- Text to paragraphs: a blank line separates two. -->
  <xsl:template name="paragraphs">
    <xsl:param name="text"/>
    <xsl:variable name="t" select="translate($text, '&#13;', '')"/>
    <xsl:choose>
      <xsl:when test="contains($t, '&#10;&#10;')">
        <xsl:call-template name="paragraph">
          <xsl:with-param name="text" select="substring-before($t, '&#10;&#10;')"/>
        </xsl:call-template>
        <xsl:call-template name="paragraphs">
          <xsl:with-param name="text" select="substring-after($t, '&#10;&#10;')"/>
        </xsl:call-template>
      </xsl:when>
      <xsl:otherwise>
        <xsl:call-template name="paragraph">
          <xsl:with-param name="text" select="$t"/>
        </xsl:call-template>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <xsl:template name="paragraph">
    <xsl:param name="text"/>
    <xsl:if test="normalize-space($text) != ''">
      <para><xsl:value-of select="normalize-space($text)"/></para>
    </xsl:if>
  </xsl:template>
</xsl:stylesheet>
